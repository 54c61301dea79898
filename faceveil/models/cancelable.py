"""Cancelable templates: identity vectors multiplied by a secret random orthogonal matrix derived
from a key. Cosine similarity between protected vectors equals that between the originals, so a key
holder searches as usual; a copied table compared against plain embeddings from a public face model
matches nothing. A new key re-projects the table (and cancels the old one)."""
from __future__ import annotations

import numpy as np


def projection(seed: bytes, dim: int) -> np.ndarray:
    """A (dim, dim) orthogonal matrix, uniformly random given the 32-byte secret `seed`."""
    if len(seed) < 16:
        raise ValueError("projection seed must be at least 16 bytes")
    rng = np.random.Generator(np.random.PCG64(int.from_bytes(seed, "big")))
    q, r = np.linalg.qr(rng.standard_normal((dim, dim)))
    return (q * np.sign(np.diag(r))).astype(np.float32)  # sign fix: Haar-distributed


def protect(vectors: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Protected (N, dim) unit vectors (rows stay unit-norm: the matrix is orthogonal)."""
    v = np.asarray(vectors, np.float32).reshape(-1, matrix.shape[0]) @ matrix.T
    return v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)


def reproject(protected: np.ndarray, old: np.ndarray, new: np.ndarray) -> np.ndarray:
    """Protected vectors under `old` moved to `new` without ever forming the plain vectors on disk."""
    return protect(np.asarray(protected, np.float32) @ old, new)
