"""Where a test archive keeps its private state: the default state root beside DEST."""

from pathlib import Path

from faceveil.storage.state import default_state_url


def private(dest) -> Path:
    """DEST.faceveil-private, the state root of the archive written to `dest` (a local folder)."""
    return Path(default_state_url(str(dest)))
