"""Protected identity templates: one interface (`TemplateTransform`, registry `TRANSFORMS`) for
what the identity index stores in place of a plain face embedding, how a key holder scores a plain
probe against it, and how key rotation moves it to a new key.

Measured with `benchmarks/template_attack.py` on ../shared/data/faces (21 identities, 101 photos,
dlib-resnet): an attacker holding a stolen index plus N known (plain, protected) pairs
- `rotation-v1` (secret orthogonal matrix, the old templates): Procrustes on N >= 128 pairs
  recovers the matrix; the stolen index is then matched against public photos as well as with the key;
- `biohash-*` / `iom-*` (keyed Gaussian projection then sign / index-of-max): every code bit is a
  half-space of the plain vector, learnt from the pairs by least squares, so the attacker still
  re-identifies far above chance at N = 512, and codes under one key link people across rows;
  they are also one-way for the key holder, so a key rotation could not re-project them;
- `aesgcm-v1` (each template sealed with AES-256-GCM under a key derived from the master key,
  random nonce, the row id as associated data; opened only in the searching process): search
  scores are the plain cosines (no loss), known pairs reveal nothing about other rows, and rows
  are unlinkable within one key and across keys. The index uses this one.

Secrets are derived from the master key by HKDF (`MasterKey.derive`) and never stored.

Longer than 300 lines: the measured alternatives (rotation, BioHash, index-of-max) stay beside the
sealed templates they lost to, in one registry, so benchmarks/template_attack.py can replay the choice.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Sequence

import numpy as np

SEALED_PURPOSE = "index/templates/aes-256-gcm-v1"
ROTATION_PURPOSE = "index/projection"  # the old templates' seed: kept to read (and migrate) old indexes


class TemplateOpenError(ValueError):
    """A stored template that does not open with this key (wrong key, or a row moved or edited)."""


def projection(seed: bytes, dim: int) -> np.ndarray:
    """A (dim, dim) orthogonal matrix, uniformly random given the 32-byte secret `seed`."""
    if len(seed) < 16:
        raise ValueError("projection seed must be at least 16 bytes")
    rng = np.random.Generator(np.random.PCG64(int.from_bytes(seed, "big")))
    q, r = np.linalg.qr(rng.standard_normal((dim, dim)))
    return (q * np.sign(np.diag(r))).astype(np.float32)  # sign fix: Haar-distributed


def protect(vectors: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Rotated (N, dim) unit vectors (rows stay unit-norm: the matrix is orthogonal)."""
    v = np.asarray(vectors, np.float32).reshape(-1, matrix.shape[0]) @ matrix.T
    return v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)


def _unit(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, np.float32)
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-12)


class TemplateTransform:
    """What the index stores for (n, dim) plain unit embeddings.

    `stored_as`: 'vector' (a float32 matrix, searchable as is) or 'sealed' (opaque bytes per row).
    `protect(vectors, contexts)` -> stored; `contexts` (one bytes per row, e.g. its row id) are bound
    to each row where the transform supports it. `scores(query, stored, contexts)` -> (n,) the key
    holder's similarity of one plain probe to every stored row (cosine scale for 'sealed' and
    rotation, code agreement for hashes). `open(stored, contexts)` -> plain vectors where the key
    holder can invert it (key rotation needs this), else NotImplementedError."""

    name = ""
    stored_as = "vector"
    invertible = False

    def __init__(self, secret: bytes, dim: int):
        if len(secret) < 16:
            raise ValueError("template secret must be at least 16 bytes")
        self.dim = int(dim)

    @classmethod
    def from_key(cls, master, dim: int) -> "TemplateTransform":
        return cls(master.derive(cls.purpose(), struct.pack(">I", int(dim))), dim)

    @classmethod
    def purpose(cls) -> str:
        return f"index/templates/{cls.name}"

    def protect(self, vectors: np.ndarray, contexts: Sequence[bytes] | None = None):
        raise NotImplementedError

    def scores(self, query: np.ndarray, stored, contexts: Sequence[bytes] | None = None) -> np.ndarray:
        raise NotImplementedError

    def open(self, stored, contexts: Sequence[bytes] | None = None) -> np.ndarray:
        raise NotImplementedError(f"{self.name} templates are one-way: the plain vectors cannot be recovered")

    def __repr__(self) -> str:  # never the secret
        return f"{type(self).__name__}(dim={self.dim})"

    def __reduce__(self):
        raise TypeError("template transforms hold key material: they are never pickled")


TRANSFORMS: dict[str, type[TemplateTransform]] = {}


def register(cls):
    TRANSFORMS[cls.name] = cls
    return cls


@register
class OrthogonalRotation(TemplateTransform):
    """The old templates: a secret Haar-random orthogonal matrix (keeps every cosine; NOT resistant
    to a known-pair attack: kept only to read and migrate indexes written before `aesgcm-v1`)."""

    name = "rotation-v1"
    invertible = True

    def __init__(self, secret: bytes, dim: int):
        super().__init__(secret, dim)
        self._m = projection(secret, self.dim)

    @classmethod
    def from_key(cls, master, dim: int) -> "OrthogonalRotation":
        return cls(master.derive(ROTATION_PURPOSE), dim)  # the seed the old index used

    def protect(self, vectors, contexts=None) -> np.ndarray:
        return protect(vectors, self._m)

    def scores(self, query, stored, contexts=None) -> np.ndarray:
        return np.asarray(stored, np.float32) @ protect(query, self._m)[0]

    def open(self, stored, contexts=None) -> np.ndarray:
        return _unit(np.asarray(stored, np.float32) @ self._m)


class _Projection(TemplateTransform):
    """A keyed Gaussian projection (dim -> m) of the embedding, quantised by the subclass."""

    m = 512

    def __init__(self, secret: bytes, dim: int):
        super().__init__(secret, dim)
        rng = np.random.Generator(np.random.PCG64(int.from_bytes(secret, "big")))
        self._w = rng.standard_normal((self.dim, self.m)).astype(np.float32)


class BioHash(_Projection):
    """BioHashing: sign of a keyed Gaussian projection to `m` dims, stored as +-1; score = the
    agreement of the codes rescaled to [-1, 1] (1 - 2 * Hamming / m)."""

    def protect(self, vectors, contexts=None) -> np.ndarray:
        return np.where(np.asarray(vectors, np.float32).reshape(-1, self.dim) @ self._w >= 0, 1, -1).astype(np.float32)

    def scores(self, query, stored, contexts=None) -> np.ndarray:
        return np.asarray(stored, np.float32) @ self.protect(query)[0] / self.m


@register
class BioHash512(BioHash):
    name, m = "biohash-512", 512


@register
class BioHash2048(BioHash):
    name, m = "biohash-2048", 2048


class IndexOfMax(_Projection):
    """Gaussian-projection index-of-max hashing: `m / q` groups of `q` keyed projections, each
    stored as the index of its largest; score = the share of groups that agree."""

    q = 16

    def protect(self, vectors, contexts=None) -> np.ndarray:
        p = (np.asarray(vectors, np.float32).reshape(-1, self.dim) @ self._w).reshape(-1, self.m // self.q, self.q)
        return p.argmax(-1).astype(np.float32)

    def scores(self, query, stored, contexts=None) -> np.ndarray:
        return (np.asarray(stored) == self.protect(query)[0]).mean(1)


@register
class IndexOfMax16(IndexOfMax):
    name, m, q = "iom-16x128", 2048, 16


@register
class SealedTemplates(TemplateTransform):
    """Each template sealed at rest: nonce (12 random bytes) || AES-256-GCM(float32 little-endian
    vector), the row's context as associated data (a row moved to another row id does not open).
    Opened only inside the searching process; scores are the plain cosines."""

    name = "aesgcm-v1"
    stored_as = "sealed"
    invertible = True
    _AAD = b"faceveil identity template\x00aesgcm-v1\x00"

    def __init__(self, secret: bytes, dim: int):
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        super().__init__(secret, dim)
        if len(secret) != 32:
            raise ValueError("aesgcm-v1 needs a 32-byte secret")
        self._aead = AESGCM(secret)
        self._size = 12 + 4 * self.dim + 16

    @classmethod
    def purpose(cls) -> str:
        return SEALED_PURPOSE

    @staticmethod
    def dim_of(blob: bytes) -> int:
        """The dimension a sealed template of this size holds (-1 when no dimension fits)."""
        n = len(blob) - 12 - 16
        return n // 4 if n > 0 and n % 4 == 0 else -1

    def _aad(self, context: bytes) -> bytes:
        return self._AAD + struct.pack(">I", self.dim) + bytes(context)

    def protect(self, vectors, contexts=None) -> list[bytes]:
        v = np.asarray(vectors, np.float32).reshape(-1, self.dim)
        ctx = list(contexts) if contexts is not None else [b""] * len(v)
        if len(ctx) != len(v):
            raise ValueError(f"{len(v)} vectors but {len(ctx)} contexts")
        out = []
        for row, c in zip(v.astype("<f4"), ctx):
            nonce = os.urandom(12)
            out.append(nonce + self._aead.encrypt(nonce, row.tobytes(), self._aad(c)))
        return out

    def open(self, stored, contexts=None) -> np.ndarray:
        from cryptography.exceptions import InvalidTag

        stored = list(stored)
        ctx = list(contexts) if contexts is not None else [b""] * len(stored)
        if len(ctx) != len(stored):
            raise ValueError(f"{len(stored)} sealed templates but {len(ctx)} contexts")
        out = np.empty((len(stored), self.dim), np.float32)
        for i, (blob, c) in enumerate(zip(stored, ctx)):
            blob = bytes(blob)
            if len(blob) != self._size:
                raise TemplateOpenError(f"sealed template {c!r}: {len(blob)} bytes, expected {self._size}")
            try:
                out[i] = np.frombuffer(self._aead.decrypt(blob[:12], blob[12:], self._aad(c)), "<f4")
            except InvalidTag:
                raise TemplateOpenError(
                    f"sealed template {c.decode(errors='replace')!r} does not open with this key "
                    "(wrong key, or the row was moved or edited)"
                ) from None
        return out

    def scores(self, query, stored, contexts=None) -> np.ndarray:
        return self.open(stored, contexts) @ _unit(np.asarray(query, np.float32).reshape(self.dim))


DEFAULT = SealedTemplates.name


def transform(name: str, master, dim: int) -> TemplateTransform:
    """The named transform keyed by `master` (a MasterKey)."""
    if name not in TRANSFORMS:
        raise ValueError(f"unknown template transform {name!r}; known: {sorted(TRANSFORMS)}")
    return TRANSFORMS[name].from_key(master, dim)


def reproject(protected: np.ndarray, old: np.ndarray, new: np.ndarray) -> np.ndarray:
    """Rotated vectors under `old` moved to `new` (the old templates' key rotation)."""
    return protect(np.asarray(protected, np.float32) @ old, new)


class IndexTemplates:
    """The identity index's templates under one master key: what indexing, search, calibration
    and key rotation use. New rows are sealed (`aesgcm-v1`); rows of indexes written before (no
    sealed template: a rotated vector) are read with the key's old rotation until they are
    re-sealed (`faceveil rotate-key`, or the next indexing run of that archive).
    Scores are cosine similarities of the plain embeddings either way, so calibrated thresholds
    keep their meaning."""

    name = SealedTemplates.name
    score = "cosine"

    def __init__(self, master, dim: int):
        self.dim = int(dim)
        self.sealed = SealedTemplates.from_key(master, dim)
        self._legacy = None
        self._master = master

    @property
    def legacy(self) -> OrthogonalRotation:
        if self._legacy is None:
            self._legacy = OrthogonalRotation.from_key(self._master, self.dim)
        return self._legacy

    def seal(self, vectors: np.ndarray, row_ids: Sequence[str]) -> list[bytes]:
        """Sealed templates of (n, dim) plain unit vectors, each bound to its row id."""
        return self.sealed.protect(vectors, [r.encode() for r in row_ids])

    def open_rows(
        self, row_ids: Sequence[str], sealed: Sequence[bytes | None], vectors=None, skip_bad: bool = False
    ) -> np.ndarray:
        """(n, dim) plain unit vectors of stored rows: sealed ones opened, old rotated ones (sealed
        None) rotated back. A sealed row that does not open with this key: TemplateOpenError, or
        with `skip_bad` a row of NaN (it scores nothing)."""
        row_ids, sealed = list(row_ids), list(sealed)
        out = np.empty((len(row_ids), self.dim), np.float32)
        have = [i for i, s in enumerate(sealed) if s is not None]
        old = [i for i, s in enumerate(sealed) if s is None]
        if have and skip_bad:
            for i in have:
                try:
                    out[i] = self.sealed.open([sealed[i]], [row_ids[i].encode()])[0]
                except TemplateOpenError:
                    out[i] = np.nan
        elif have:
            out[have] = self.sealed.open([sealed[i] for i in have], [row_ids[i].encode() for i in have])
        if old:
            if vectors is None:
                raise ValueError("rows without a sealed template need their stored vectors")
            v = np.asarray(vectors, np.float32).reshape(len(row_ids), self.dim)
            out[old] = self.legacy.open(v[old])
        return out

    def scores(self, query: np.ndarray, row_ids, sealed, vectors=None) -> np.ndarray:
        """Cosine of one plain probe to every stored row."""
        return self.open_rows(row_ids, sealed, vectors) @ _unit(np.asarray(query, np.float32).reshape(self.dim))

    def __repr__(self) -> str:
        return f"IndexTemplates({self.name}, dim={self.dim})"

    def __reduce__(self):
        raise TypeError("index templates hold key material: they are never pickled")
