"""faceveil."""
