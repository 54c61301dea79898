"""Who is who among a dataset's faces: identity vectors grouped into people, so each person can get
one surrogate (identity replacement that stays consistent across photos)."""

from __future__ import annotations

import numpy as np


def group_people(vectors: np.ndarray, threshold: float, quality: np.ndarray | None = None) -> np.ndarray:
    """(N,) person labels 0..P-1 for N unit identity vectors: faces taken best `quality` first, each
    joins the person whose mean vector is nearest when that cosine reaches `threshold` (the embedder's
    same-person threshold), else starts a new person. Comparing with a person's mean, not with any one
    face of them, keeps two look-alikes from being chained together through a third face."""
    v = np.asarray(vectors, np.float32)
    v = v.reshape(len(v), -1) if len(v) else v.reshape(0, 0)
    order = np.argsort(-np.asarray(quality, np.float64), kind="stable") if quality is not None else np.arange(len(v))
    labels = np.full(len(v), -1, np.int64)
    sums: list[np.ndarray] = []
    for i in order:
        if sums:
            means = np.stack(sums)
            means /= np.maximum(np.linalg.norm(means, axis=1, keepdims=True), 1e-12)
            cos = means @ v[i]
            best = int(np.argmax(cos))
            if cos[best] >= threshold:
                labels[i] = best
                sums[best] = sums[best] + v[i]
                continue
        labels[i] = len(sums)
        sums.append(v[i].astype(np.float64).copy())
    return labels


def representatives(labels: np.ndarray, quality: np.ndarray) -> dict[int, int]:
    """{person: index of their best-quality face}."""
    best: dict[int, int] = {}
    for i, p in enumerate(np.asarray(labels).tolist()):
        if p not in best or quality[i] > quality[best[p]]:
            best[p] = i
    return best


def shared_people(
    vectors: np.ndarray, quality: np.ndarray, threshold: float
) -> tuple[np.ndarray, np.ndarray, dict[int, int]]:
    """(labels, each person's mean unit vector, {person: best face} of the people with two or more
    faces): who needs one surrogate for several faces."""
    labels = group_people(vectors, threshold, quality)
    v = np.asarray(vectors, np.float32)
    means = np.stack([v[labels == p].mean(0) for p in range(labels.max() + 1)]) if len(labels) else v[:0]
    means /= np.maximum(np.linalg.norm(means, axis=1, keepdims=True), 1e-12)
    counts = np.bincount(labels) if len(labels) else np.zeros(0, int)
    return labels, means, {p: i for p, i in representatives(labels, quality).items() if counts[p] >= 2}
