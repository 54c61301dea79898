"""`python -m faceveil`: the same command line as `faceveil` (faceveil/cli)."""

from faceveil.cli import run

run()
