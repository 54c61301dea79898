"""Files that appear whole or not at all: written under a temporary name beside the target, then
renamed over it (a rename within one folder is atomic), so a process beside this one reads the old
file, the new one, or none, never half of one."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def replaced_atomically(path: Path) -> Iterator[Path]:
    """A new temporary path beside `path` (its folder created, the file itself not) for the block to
    write; renamed over `path` when the block ends without error, removed when it raises."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    os.unlink(tmp)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def write_atomically(path: Path, data: bytes) -> None:
    """`data` in `path`, whole or not at all."""
    with replaced_atomically(path) as tmp:
        tmp.write_bytes(data)
