"""The identity-embedder interface, its registry and a per-face quality score for best-frame picking."""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod

import numpy as np

from faceveil.models.detections import Detections
from faceveil.models.detectors.base import weights_sha256
from faceveil.models.registry import Registry


class Embedder(ABC):
    """Maps each detected face in an RGB uint8 frame to a unit-norm float32 identity vector.

    `same_person_threshold` is the default cosine similarity at or above which two faces count as
    the same person; `weight_files` lists the weight files that `weights_id` hashes."""

    name: str = ""
    dim: int = 0
    same_person_threshold: float = 0.5
    weight_files: tuple[str, ...] = ()

    def load(self) -> None:
        """Loads the weights now (otherwise on first use)."""

    @property
    def device(self) -> str:
        """'cuda' or 'cpu': where this embedder runs (models/device.py)."""
        return "cpu"

    @abstractmethod
    def _embed(self, rgb: np.ndarray, dets: Detections) -> np.ndarray:
        """Raw (N, dim) descriptors of the N faces in `dets` (N >= 1), not necessarily normalised."""

    def embed(self, rgb: np.ndarray, dets: Detections) -> np.ndarray:
        """(N, dim) float32 L2-normalised embeddings, one row per detection, in order."""
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
            raise ValueError(f"embedder needs an HxWx3 uint8 RGB frame, got {rgb.shape} {rgb.dtype}")
        if not len(dets):
            return np.zeros((0, self.dim), np.float32)
        v = np.asarray(self._embed(np.ascontiguousarray(rgb), dets), np.float32).reshape(len(dets), self.dim)
        return v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)

    def embed_mirror_mean(self, rgb: np.ndarray, dets: Detections) -> np.ndarray:
        """(N, dim) unit vectors: each face's embedding averaged with its mirror image's (what the
        identity index stores and probes with: steadier than one view, at twice the cost)."""
        v = self.embed(rgb, dets) + self.embed(np.ascontiguousarray(rgb[:, ::-1]), dets.mirrored(rgb.shape[1]))
        return (v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)).astype(np.float32)

    @property
    def weights_id(self) -> str:
        """'sha256:<hex>' of the weight file; of several, the SHA-256 of their hex digests in order."""
        digests = [weights_sha256(str(p)) for p in self.weight_files]
        if not digests:
            raise RuntimeError(f"embedder {self.name!r} lists no weight files")
        return "sha256:" + (digests[0] if len(digests) == 1 else hashlib.sha256("".join(digests).encode()).hexdigest())


EMBEDDERS: Registry[Embedder] = Registry("embedder")


def _crops(rgb: np.ndarray, boxes: np.ndarray):
    h, w = rgb.shape[:2]
    for x1, y1, x2, y2 in np.round(boxes).astype(int):
        x1, y1, x2, y2 = max(x1, 0), max(y1, 0), min(x2, w), min(y2, h)
        yield rgb[y1:y2, x1:x2] if x2 > x1 and y2 > y1 else None


def quality(rgb: np.ndarray, dets: Detections, full_size: float = 112.0, sharp: float = 100.0) -> np.ndarray:
    """(N,) in [0,1]: size (px/full_size, capped) x sharpness (grey Laplacian variance v/(v+sharp)) x frontality."""
    import cv2

    n = len(dets)
    if not n:
        return np.zeros(0, np.float32)
    size = np.clip(dets.sizes / full_size, 0, 1)
    sharpness = np.zeros(n)
    for i, crop in enumerate(_crops(rgb, dets.boxes)):
        if crop is not None and min(crop.shape[:2]) >= 2:
            # at a fixed 112 px, so sharpness does not depend on face size (size has its own term)
            grey = cv2.cvtColor(cv2.resize(crop, (112, 112), interpolation=cv2.INTER_AREA), cv2.COLOR_RGB2GRAY)
            v = cv2.Laplacian(grey, cv2.CV_64F).var()
            sharpness[i] = v / (v + sharp)
    return (size * sharpness * frontality(dets.landmarks)).astype(np.float32)


def frontality(landmarks: np.ndarray) -> np.ndarray:
    """(N,) in [0,1] from 5-point landmarks: 1 - 2 x the nose's offset from the eyes' midpoint along
    the eye line (in eye distances: yaw), times 1 - roll/45 degrees; 0.5 where landmarks are unknown."""
    lm = np.asarray(landmarks, np.float64).reshape(-1, 5, 2)
    eye = lm[:, 1] - lm[:, 0]
    dist = np.maximum(np.linalg.norm(eye, axis=1), 1e-6)
    yaw = np.abs(((lm[:, 2] - (lm[:, 0] + lm[:, 1]) / 2) * eye).sum(1)) / dist**2
    roll = np.arctan2(np.abs(eye[:, 1]), np.abs(eye[:, 0]))
    f = np.clip(1 - 2 * yaw, 0, 1) * np.clip(1 - roll / (np.pi / 4), 0, 1)
    return np.where(np.isnan(f), 0.5, f)
