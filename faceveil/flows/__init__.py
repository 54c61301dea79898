"""faceveil.flows."""
