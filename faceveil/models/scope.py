"""What a masking method covers around each face (`--scope`): the face region ("face", the default),
the head with its hair ("head") or the person's whole silhouette ("person").

"head" and "person" segment the person (models/segmentation) in a window around the face: the part of
the silhouette connected to the face, inside the scope's extent (in face sizes), made coarse so that it
does not trace a hairstyle (head: its convex hull; both grown by a margin), always with the face region
itself. Fail closed: without the segmentation model the whole extent is masked."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import cv2
import numpy as np

SCOPES = ("face", "head", "person")
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Extent:
    """A scope's reach from the face box, in face sizes (the box's longer side): `side` beyond each side
    of the box, `up` above it, `down` below it; `window`: the segmented square's side and `drop` its
    centre below the face's; `grow`: the margin added to the mask; `hull`: the mask's convex hull."""

    side: float
    up: float
    down: float
    window: float
    drop: float
    grow: float
    hull: bool


EXTENTS = {
    "head": Extent(side=0.55, up=0.8, down=0.35, window=3.5, drop=0.5, grow=0.08, hull=True),
    "person": Extent(side=3.0, up=0.8, down=9.0, window=11.0, drop=4.0, grow=0.2, hull=False),
}


def check_scope(scope: str) -> None:
    if scope not in SCOPES:
        raise ValueError(f"scope must be one of {', '.join(SCOPES)}, got {scope!r}")


def scope_regions(
    boxes: np.ndarray, sizes: np.ndarray, face_regions: np.ndarray, scope: str, width: int, height: int
) -> np.ndarray:
    """Integer xyxy regions a scope may change, one per face: its extent around the face box joined with
    the face region (`face_regions`, already grown for motion), clipped to the frame."""
    if scope == "face" or not len(boxes):
        return face_regions
    e, s = EXTENTS[scope], sizes[:, None]
    r = np.concatenate([boxes[:, :2] - s * [e.side, e.up], boxes[:, 2:] + s * [e.side, e.down]], 1)
    r = np.concatenate(
        [np.minimum(np.floor(r[:, :2]), face_regions[:, :2]), np.maximum(np.ceil(r[:, 2:]), face_regions[:, 2:])], 1
    )
    r[:, [0, 2]] = r[:, [0, 2]].clip(0, width)
    r[:, [1, 3]] = r[:, [1, 3]].clip(0, height)
    return r.astype(np.int32)


def _segmenter():
    global _SEGMENTER
    if _SEGMENTER is None:
        from faceveil.models.segmentation import PersonSegmenter

        _SEGMENTER = PersonSegmenter()
    return _SEGMENTER


_SEGMENTER = None


def scope_mask(rgb: np.ndarray, box, size: float, face_region, region, scope: str, segmenter=None) -> np.ndarray:
    """bool mask over `region` (xyxy, from scope_regions) of the pixels to anonymize for the face at
    `box`: the person connected to the face, as the scope's Extent shapes it, and the face region.
    The whole region when the segmentation model is unavailable (fail closed)."""
    from faceveil.models.litert import ModelUnavailable

    x1, y1, x2, y2 = (int(v) for v in region)
    out = np.zeros((y2 - y1, x2 - x1), bool)
    fx1, fy1, fx2, fy2 = (int(v) for v in face_region)
    out[max(fy1 - y1, 0) : max(fy2 - y1, 0), max(fx1 - x1, 0) : max(fx2 - x1, 0)] = True
    if scope == "face" or not out.size:
        return out
    e = EXTENTS[scope]
    c = np.array([(box[0] + box[2]) / 2, (box[1] + box[3]) / 2 + e.drop * size])
    w = np.r_[np.floor(c - e.window * size / 2), np.ceil(c + e.window * size / 2)].astype(int)
    w = np.r_[np.maximum(w[:2], 0), np.minimum(w[2:], rgb.shape[1::-1])]  # the frame's part of the square
    try:
        p = (segmenter or _segmenter()).probability(rgb, w) > 0.5
    except ModelUnavailable as err:
        log.warning("scope %s: %s; the whole region is masked", scope, err)
        out[:] = True
        return out
    person = np.zeros_like(out)  # the window's mask inside the region
    ix1, iy1, ix2, iy2 = max(x1, w[0]), max(y1, w[1]), min(x2, w[2]), min(y2, w[3])
    if ix2 > ix1 and iy2 > iy1:
        person[iy1 - y1 : iy2 - y1, ix1 - x1 : ix2 - x1] = p[iy1 - w[1] : iy2 - w[1], ix1 - w[0] : ix2 - w[0]]
    n, labels = cv2.connectedComponents((person | out).astype(np.uint8), connectivity=8)
    keep = np.unique(labels[out])  # the components that touch the face region
    mask = np.isin(labels, keep[keep > 0])
    if e.hull and mask.any():
        pts = cv2.findNonZero(mask.astype(np.uint8))
        cv2.fillConvexPoly(mask_u8 := mask.astype(np.uint8), cv2.convexHull(pts), 1)
        mask = mask_u8.astype(bool)
    g = max(1, int(round(e.grow * size)))
    mask = cv2.dilate(mask.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * g + 1, 2 * g + 1))) > 0
    return mask | out
