"""faceveil.tasks."""
