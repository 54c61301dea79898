"""SHA-256 of a file, streamed (weights, inputs, outputs), and the id a media gets from its name."""

import hashlib


def sha256_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def media_id(rel: str) -> str:
    """A media's id: from its path in the archive, so the same on every run (and to anyone who has it)."""
    return hashlib.sha256(rel.encode()).hexdigest()[:16]
