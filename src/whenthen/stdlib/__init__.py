"""The standard library: pure functions, stdlib actions and system triggers."""
