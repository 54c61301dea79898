"""faceveil.models."""
