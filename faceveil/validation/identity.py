"""Identity measures between original and anonymized faces: cosines, matching found faces to the
originals, landmark (pose) error, re-identification at a threshold, and, along tracks, identity
stability and one surrogate per person."""

from __future__ import annotations

import math

import numpy as np

from faceveil.models.detections import Detections, iou_matrix


def rowwise_cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine of each row of `a` with the same row of `b`."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    na, nb = np.linalg.norm(a, axis=1), np.linalg.norm(b, axis=1)
    return (a * b).sum(1) / np.maximum(na * nb, 1e-12)


def match_faces(found: Detections, faces: Detections, iou: float = 0.3) -> np.ndarray:
    """For each face, the index of the best-overlapping found face (IoU >= `iou`), else -1."""
    if not len(faces) or not len(found):
        return np.full(len(faces), -1, np.int64)
    m = iou_matrix(faces.boxes, found.boxes)
    best = m.argmax(1)
    return np.where(m[np.arange(len(faces)), best] >= iou, best, -1)


def pose_error(a: np.ndarray, b: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """Mean distance between two faces' 5 landmarks, in face sizes (NaN where either is unknown)."""
    d = np.linalg.norm(
        np.asarray(a, np.float64).reshape(-1, 5, 2) - np.asarray(b, np.float64).reshape(-1, 5, 2), axis=2
    )
    return d.mean(1) / np.maximum(np.asarray(sizes, np.float64), 1e-6)


def identified(
    probes: np.ndarray,
    probe_labels,
    gallery: np.ndarray,
    gallery_labels,
    threshold: float,
    exclude: np.ndarray | None = None,
) -> np.ndarray:
    """Re-identification as an attacker runs it: each anonymized face (probe) is compared with a
    gallery of original faces; it is re-identified when its best match carries its own label and
    scores at least `threshold`. `exclude[i, j]` True leaves gallery face j out for probe i (the
    probe's own original photo, say). Returns (n_probes,) bool."""
    p, g = np.asarray(probes, np.float64), np.asarray(gallery, np.float64)
    if not len(p) or not len(g):
        return np.zeros(len(p), bool)
    p = p / np.maximum(np.linalg.norm(p, axis=1, keepdims=True), 1e-12)
    g = g / np.maximum(np.linalg.norm(g, axis=1, keepdims=True), 1e-12)
    sims = p @ g.T
    if exclude is not None:
        sims = np.where(exclude, -np.inf, sims)
    best = sims.argmax(1)
    labels = np.asarray(gallery_labels)[best]
    return (labels == np.asarray(probe_labels)) & (sims[np.arange(len(p)), best] >= threshold)


def identity_stability(track_ids, frames, embeddings) -> float:
    """Mean cosine of consecutive anonymized faces along each track (NaN with no consecutive pair):
    a replacement identity that flickers from frame to frame scores low."""
    track_ids, frames, emb = np.asarray(track_ids), np.asarray(frames), np.asarray(embeddings, np.float64)
    sims = []
    for t in np.unique(track_ids[track_ids >= 0]):
        idx = np.flatnonzero(track_ids == t)
        idx = idx[np.argsort(frames[idx])]
        if len(idx) > 1:
            sims.extend(rowwise_cosine(emb[idx[:-1]], emb[idx[1:]]))
    return float(np.mean(sims)) if sims else math.nan


def _track_means(track_ids, emb) -> tuple[np.ndarray, np.ndarray]:
    ids = np.unique(track_ids[track_ids >= 0])
    means = np.array([emb[track_ids == t].mean(0) for t in ids]).reshape(len(ids), -1)
    return ids, means / np.maximum(np.linalg.norm(means, axis=1, keepdims=True), 1e-12)


def surrogate_consistency(track_ids, originals, anonymized, threshold: float) -> float:
    """Share of track pairs of the same person (original embeddings match at `threshold`) whose
    surrogates match too: one person, one surrogate. NaN when no two tracks show the same person."""
    track_ids = np.asarray(track_ids)
    _, orig = _track_means(track_ids, np.asarray(originals, np.float64))
    _, anon = _track_means(track_ids, np.asarray(anonymized, np.float64))
    if len(orig) < 2:
        return math.nan
    same = np.triu(orig @ orig.T >= threshold, 1)
    if not same.any():
        return math.nan
    return float(((anon @ anon.T) >= threshold)[same].mean())
