"""The anonymizer interface: mask settings (shape, margins, scope), the regions a method may change,
the `Anonymizer` base class and its registry."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Callable

import cv2
import numpy as np

from faceveil.models.detections import Detections
from faceveil.models.registry import Registry


@dataclass(frozen=True)
class MaskSettings:
    """shape: 'box' (default: an oval patch reads as a head to detectors, so they keep finding
    "faces" in anonymized video) or 'ellipse'; pad: extra margin as a fraction of face size on each
    side; motion_pad: extra margin per pixel/frame of head motion."""

    shape: str = "box"
    pad: float = 0.4
    motion_pad: float = 1.5
    scope: str = "face"  # face | head | person: what the masking methods cover around each face (models/scope)

    def __post_init__(self):
        from faceveil.models.scope import check_scope

        if self.shape not in ("ellipse", "box"):
            raise ValueError(f"mask shape must be 'ellipse' or 'box', got {self.shape!r}")
        check_scope(self.scope)


SCOPE_SIZE = {"head": 3.0, "person": 4.0}  # a scope's size over the face's: blur and mosaic strength follow it


@dataclass(frozen=True)
class Placement:
    """Where a scoped region lies: its top-left corner (x, y) in the frame, the frame's size, and the
    media the frame belongs to."""

    x: int
    y: int
    frame_width: int
    frame_height: int
    media: str


def mask_regions(dets: Detections, width: int, height: int, mask: MaskSettings) -> np.ndarray:
    """Integer xyxy regions to anonymize: boxes grown by size and motion, clipped to the frame.
    An ellipse inscribed in the region still covers the face box (factor sqrt(2) on the half-axes)."""
    if not len(dets):
        return np.zeros((0, 4), np.int32)
    c = (dets.boxes[:, :2] + dets.boxes[:, 2:]) / 2
    half = (dets.boxes[:, 2:] - dets.boxes[:, :2]) / 2
    half = half + mask.pad * dets.sizes[:, None] + mask.motion_pad * np.abs(dets.motion)
    if mask.shape == "ellipse":
        half = half * np.float32(np.sqrt(2) * 0.85)
    r = np.concatenate([np.floor(c - half), np.ceil(c + half)], 1)
    r[:, [0, 2]] = r[:, [0, 2]].clip(0, width)
    r[:, [1, 3]] = r[:, [1, 3]].clip(0, height)
    return r.astype(np.int32)


class Anonymizer(ABC):
    """Replaces every face region of an RGB uint8 frame (in place) and returns the frame. Keyed
    methods (`needs_key`) take `region_key(j)`: the secret key of the j-th detection's region."""

    name: str = ""
    needs_key: bool = False
    scoped: bool = False  # covers a head or person scope (models/scope): the masking methods
    shows_faces: bool = False  # its output shows a face where the original was (replace)

    def __init__(self, mask: MaskSettings = MaskSettings()):
        if mask.scope != "face" and not self.scoped:
            raise ValueError(
                f"--scope {mask.scope} works with the masking methods (solid, blur, mosaic), "
                f"not with {self.name or type(self).__name__}"
            )
        self.mask = mask

    @abstractmethod
    def _replace(self, roi: np.ndarray, face_size: float, key: bytes | None) -> np.ndarray:
        """The anonymized version of `roi` (same shape)."""

    def regions(self, dets: Detections, width: int, height: int) -> np.ndarray:
        """The integer xyxy regions `apply` may change, one per detection (a head or person scope's
        extent around the face region)."""
        from faceveil.models.scope import scope_regions

        faces = mask_regions(dets, width, height, self.mask)
        return scope_regions(dets.boxes, dets.sizes, faces, self.mask.scope, width, height)

    def face_regions(self, dets: Detections, width: int, height: int) -> np.ndarray:
        """The face part of each region (the whole region under the face scope)."""
        return mask_regions(dets, width, height, self.mask)

    def _masks(self, rgb: np.ndarray, dets: Detections, regions: np.ndarray) -> list:
        """Per detection, the bool mask of its region's pixels to change (None: all of them; an ellipse
        mask takes its inscribed ellipse), from the frame before any change."""
        if self.mask.scope != "face":
            from faceveil.models.scope import scope_mask

            faces = mask_regions(dets, rgb.shape[1], rgb.shape[0], self.mask)
            return [
                scope_mask(rgb, dets.boxes[j], float(dets.sizes[j]), faces[j], regions[j], self.mask.scope)
                for j in range(len(dets))
            ]
        if self.mask.shape != "ellipse":
            return [None] * len(dets)
        masks = []
        for x1, y1, x2, y2 in regions:
            rh, rw = max(0, int(y2 - y1)), max(0, int(x2 - x1))
            m = np.zeros((rh, rw), np.uint8)
            cv2.ellipse(m, (((rw - 1) / 2, (rh - 1) / 2), (rw, rh), 0), 1, -1)
            masks.append(m.astype(bool))
        return masks

    def apply(
        self,
        rgb: np.ndarray,
        dets: Detections,
        region_key: Callable[[int], bytes] | None = None,
        *,
        media: str = "",
        preview: bool = False,
    ) -> np.ndarray:
        """`media`: the media the frame belongs to (methods that keep one surrogate per track scope
        their tracks by it); `preview`: a look at the frame as it will be (the second look), where
        such methods may take a cheaper path. Masks ignore both."""
        if self.needs_key and region_key is None:
            raise ValueError(f"the {self.name} method needs a key")
        h, w = rgb.shape[:2]
        regions = self.regions(dets, w, h)
        masks = self._masks(rgb, dets, regions)
        for j, ((x1, y1, x2, y2), size) in enumerate(zip(regions, dets.sizes)):
            if x2 <= x1 or y2 <= y1:
                continue
            roi = rgb[y1:y2, x1:x2]
            if self.mask.scope != "face":
                new = self._scoped(
                    roi, masks[j], float(size) * SCOPE_SIZE[self.mask.scope], Placement(int(x1), int(y1), w, h, media)
                )
            else:
                new = self._replace(roi, float(size), region_key(j) if self.needs_key else None)
            if masks[j] is None:
                roi[:] = new
            else:
                roi[masks[j]] = new[masks[j]]
        return rgb

    def _scoped(self, roi: np.ndarray, mask: np.ndarray, size: float, where: Placement) -> np.ndarray:
        """The anonymized `roi` under a head or person scope (`mask`: its pixels to change; `size`: the
        scope's size, so that strength follows the head or person, not the face alone; `where`: the
        roi's place in the frame and media)."""
        return self._replace(roi, size, None)


ANONYMIZERS: Registry[Anonymizer] = Registry("anonymization method")
