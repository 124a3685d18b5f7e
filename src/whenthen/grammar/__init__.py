"""The language front end: grammar, parser (parse tree → AST), AST and printer."""
