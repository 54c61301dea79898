"""The detector interface and its registry."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from faceveil.hashing import sha256_file
from faceveil.models.detections import Detections
from faceveil.models.registry import Registry


@dataclass(frozen=True)
class DetectorSettings:
    """threshold: minimum score in [0, 1] (None = the detector's default); min_size: smallest face
    kept, in pixels; scale: inference scale (0.5 = run at half resolution); threads: CPU threads
    for inference (0 = library default); precision: "fp32", or where the detector has them
    "bf16", "int8" or "auto" (the best on this machine; others ignore it)."""

    threshold: float | None = None
    min_size: float = 0.0
    scale: float = 1.0
    threads: int = 0
    precision: str = "fp32"


class Detector(ABC):
    """Finds faces in an RGB uint8 frame and returns `Detections` in frame coordinates."""

    name: str = ""
    default_threshold: float = 0.5

    def __init__(self, settings: DetectorSettings = DetectorSettings()):
        if not 0 < settings.scale <= 4:
            raise ValueError(f"detector scale must be in (0, 4], got {settings.scale}")
        self.settings = settings
        self.threshold = self.default_threshold if settings.threshold is None else settings.threshold
        if not 0 <= self.threshold <= 1:
            raise ValueError(f"detector threshold must be in [0, 1], got {self.threshold}")

    @abstractmethod
    def _detect(self, rgb: np.ndarray) -> Detections:
        """Faces with score >= self.threshold in `rgb` (already scaled)."""

    def detect(self, rgb: np.ndarray) -> Detections:
        h, w = rgb.shape[:2]
        s = self.settings.scale
        if s != 1.0:
            import cv2

            small = cv2.resize(rgb, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)
            dets = self._detect(small).scale(w / small.shape[1], h / small.shape[0])
        else:
            dets = self._detect(rgb)
        dets = dets.clip(w, h)
        if self.settings.min_size > 0:
            dets = dets[dets.sizes >= self.settings.min_size]
        return dets

    @property
    def device(self) -> str:
        """'cuda' or 'cpu': where this detector runs (models/device.py)."""
        return "cpu"

    @property
    @abstractmethod
    def weights_id(self) -> str:
        """What identifies the weights: 'sha256:<hex>' of the weight file, or a library version."""


class Ensemble:
    """Several detectors as one `detect`: their faces merged (overlapping boxes keep the best score)."""

    def __init__(self, detectors: list[Detector]):
        self.detectors = list(detectors)

    @property
    def device(self) -> str:
        from faceveil.models.device import combine

        return combine(d.device for d in self.detectors)

    def detect(self, rgb: np.ndarray) -> Detections:
        from faceveil.models.detections import merge

        found = [d.detect(rgb) for d in self.detectors]
        return found[0] if len(found) == 1 else merge(found)


DETECTORS: Registry[Detector] = Registry("detector")


weights_sha256 = lru_cache(maxsize=16)(sha256_file)  # weight files are hashed once per process
