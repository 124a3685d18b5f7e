"""Authoring tools: the formatter, flow graphs and the language server."""
