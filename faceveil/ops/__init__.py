"""What the CLI runs in-process around its commands (not distributed)."""
