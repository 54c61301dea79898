"""faceveil.validation."""
