"""The `whenthen` command line: a thin click group; every command calls the Python API."""

from __future__ import annotations

import click


@click.group()
def main() -> None:
    """whenthen: rules for event automation."""
