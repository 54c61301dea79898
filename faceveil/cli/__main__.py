"""`python -m faceveil.cli`."""

from faceveil.cli import run

run()
