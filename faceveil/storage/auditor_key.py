"""The auditor's log key (`faceveil log-key`) and its one-way evolution: K0 is the key of the access
log's row at seq `start`, row i's key is K_i = HMAC(K_{i-1}, "next"), and a row's forward-secure tag
is HMAC(K_seq, what it covers). Knowing K_i gives every later key and no earlier one (log_seal keeps
the next row's key in the state root). Kept in a 0600 file; never in repr(), logs or exceptions."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
from pathlib import Path

from faceveil.storage.keys import KEY_BYTES, BadKeyError

_PREFIX = "faceveil-log-key-v1:"


class LogKey:
    """The auditor's log key: K0, the key of the row at seq `start`. `id` is safe to show."""

    __slots__ = ("_b", "start")

    def __init__(self, material: bytes, start: int):
        if not isinstance(material, (bytes, bytearray)) or len(material) != KEY_BYTES:
            raise BadKeyError(f"a log key is {KEY_BYTES} bytes")
        if int(start) < 1:
            raise BadKeyError("a log key starts at seq 1 or later")
        self._b, self.start = bytes(material), int(start)

    @classmethod
    def generate(cls, start: int) -> "LogKey":
        return cls(secrets.token_bytes(KEY_BYTES), start)

    @property
    def id(self) -> str:
        return key_id(self._b)

    def key_at(self, seq: int) -> bytes:
        """K_seq (seq >= start)."""
        return evolve(self._b, seq - self.start)

    def __repr__(self) -> str:
        return f"LogKey({self.id}, start {self.start})"

    __str__ = __repr__

    def __reduce__(self):
        raise TypeError("log keys are not pickled")


def key_id(k0: bytes) -> str:
    return "fvl1:" + hmac.new(k0, b"faceveil log key id", hashlib.sha256).hexdigest()[:16]


def next_key(k: bytes) -> bytes:
    return hmac.new(k, b"faceveil log key next", hashlib.sha256).digest()


def evolve(k: bytes, steps: int) -> bytes:
    if steps < 0:
        raise ValueError("a log key evolves forward only")
    for _ in range(steps):
        k = next_key(k)
    return k


def commitment(k: bytes) -> str:
    return hashlib.sha256(b"faceveil log key commit\x00" + k).hexdigest()


def tag(k: bytes, payload: bytes) -> str:
    return hmac.new(k, b"faceveil log tag\x00" + payload, hashlib.sha256).hexdigest()


def tag_ok(k: bytes, payload: bytes, given) -> bool:
    return isinstance(given, str) and hmac.compare_digest(tag(k, payload).encode(), given.encode())


def write_log_key_file(path: str | Path, key: LogKey) -> None:
    """Creates the log key file readable by its owner only (0600); refuses to replace one."""
    path = Path(path)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise BadKeyError(f"{path}: a file already exists (not overwritten)") from None
    with os.fdopen(fd, "w") as f:
        f.write(f"{_PREFIX}{base64.urlsafe_b64encode(key._b).decode()}:{key.start}\n")
    os.chmod(path, 0o600)


def load_log_key(path: str | Path) -> LogKey:
    path = Path(path)
    if not path.is_file():
        raise BadKeyError(f"{path}: log key file not found")
    if path.stat().st_mode & 0o077:
        raise BadKeyError(f"{path}: log key file is readable by others; chmod 600 it")
    text = path.read_text().strip()
    if not text.startswith(_PREFIX):
        raise BadKeyError(f"{path}: not a faceveil log key (expected the {_PREFIX} prefix)")
    try:
        b64, start = text[len(_PREFIX) :].rsplit(":", 1)
        return LogKey(base64.urlsafe_b64decode(b64.encode()), int(start))
    except (ValueError, TypeError):
        raise BadKeyError(f"{path}: malformed log key") from None
