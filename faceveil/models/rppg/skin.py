"""The skin an rPPG estimator reads, from a face's 5 landmarks: the forehead and both cheeks as
polygons in a face frame (x: eye distances from the eyes' midpoint along the eye line; y: the way
from the eyes' midpoint to the mouth's, 0 at the eyes, 1 at the mouth), mapped into the image by the
affine map those axes define; the nose and the skin between the eyes come with them. Never the eyes
(|x| 0.2-0.8, y -0.15-0.15 and eyebrows near -0.3 lie outside every polygon), the mouth (corners at
y 1, x +-0.41) or anything outside the face's box (shrunk by BOX_INSET). Where the
landmarks are unknown (NaN) they come from the box (typical positions)."""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from faceveil.models.face_attributes import landmarks_from_box

FOREHEAD = [(-0.6, -0.85), (0.6, -0.85), (0.6, -0.45), (0.17, -0.45), (0.17, -0.25), (-0.17, -0.25),
            (-0.17, -0.45), (-0.6, -0.45)]  # with the skin between the eyebrows
# the image-right cheek, from the nose's midline (the nose is skin) out towards the jaw, its inner lower
# corner cut away from the mouth; mirrored for the other
CHEEK = [(0.0, -0.25), (0.17, -0.25), (0.17, 0.25), (0.8, 0.25), (0.8, 0.95), (0.64, 0.95), (0.56, 0.72),
         (0.17, 0.64), (0.0, 0.64)]
POLYGONS = (FOREHEAD, CHEEK, [(-x, y) for x, y in CHEEK])
BOX_INSET = 0.06  # polygons are clipped to the box shrunk by this share of its size on every side


@dataclass(frozen=True)
class SkinRegion:
    """A face's skin pixels: the bool mask `mask` of the frame's window [y0:y1, x0:x1]."""

    y0: int
    y1: int
    x0: int
    x1: int
    mask: np.ndarray

    @property
    def n(self) -> int:
        return int(self.mask.sum())

    def mean(self, rgb: np.ndarray) -> np.ndarray:
        """The skin's mean RGB (3,) in this frame (NaN when the region is empty)."""
        if not self.n:
            return np.full(3, np.nan)
        return rgb[self.y0:self.y1, self.x0:self.x1][self.mask].mean(axis=0, dtype=np.float64)

    def full(self, height: int, width: int) -> np.ndarray:
        out = np.zeros((height, width), bool)
        out[self.y0:self.y1, self.x0:self.x1] = self.mask
        return out


def face_frame(landmarks: np.ndarray, box) -> np.ndarray:
    """The 2x3 affine map from the face frame to image pixels."""
    lm = np.asarray(landmarks, np.float64)
    if not np.isfinite(lm).all():
        lm = landmarks_from_box(box).astype(np.float64)
    eyes, mouth = lm[:2].mean(axis=0), lm[3:5].mean(axis=0)
    ex, ey = lm[1] - lm[0], mouth - eyes
    if np.linalg.norm(ex) < 1e-3 or np.linalg.norm(ey) < 1e-3:
        lm = landmarks_from_box(box).astype(np.float64)
        eyes, mouth = lm[:2].mean(axis=0), lm[3:5].mean(axis=0)
        ex, ey = lm[1] - lm[0], mouth - eyes
    return np.column_stack([ex, ey, eyes])


def skin_region(landmarks: np.ndarray, box, width: int, height: int) -> SkinRegion:
    """Forehead and cheeks of one face in a `width` x `height` frame."""
    x1, y1, x2, y2 = np.asarray(box, np.float64)
    ix, iy = BOX_INSET * (x2 - x1), BOX_INSET * (y2 - y1)
    bx0, by0 = max(0, int(np.ceil(x1 + ix))), max(0, int(np.ceil(y1 + iy)))
    bx1, by1 = min(width, int(np.floor(x2 - ix))), min(height, int(np.floor(y2 - iy)))
    if bx1 <= bx0 or by1 <= by0:
        return SkinRegion(0, 0, 0, 0, np.zeros((0, 0), bool))
    m = face_frame(landmarks, box)
    mask = np.zeros((by1 - by0, bx1 - bx0), np.uint8)
    for poly in POLYGONS:
        pts = np.asarray(poly, np.float64) @ m[:, :2].T + m[:, 2] - (bx0, by0)
        cv2.fillPoly(mask, [np.round(pts * 16).astype(np.int32)], 1, lineType=cv2.LINE_8, shift=4)
    return SkinRegion(by0, by1, bx0, bx1, mask.astype(bool))
