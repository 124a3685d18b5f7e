"""`python -m whenthen` runs the command line."""

from whenthen.cli import main

main(prog_name="whenthen")
