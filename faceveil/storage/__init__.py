"""faceveil.storage."""
