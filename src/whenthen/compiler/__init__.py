"""The compiler: types, declarations, checker, code generation and disassembly."""
