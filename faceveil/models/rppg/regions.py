"""Where an attacker reads a pulse, besides the mask the edit works on: the whole face box, the
forehead, each cheek and the neck, every pixel of each (skin or not), placed by the face frame of the
5 landmarks (skin.face_frame: x in eye distances, y from the eyes, 0, to the mouth, 1). The pulse
checks read all of them before and after the edit."""

from __future__ import annotations

import cv2
import numpy as np

from faceveil.models.rppg.skin import face_frame

READ_REGIONS = {
    "forehead": [(-0.45, -0.95), (0.45, -0.95), (0.45, -0.5), (-0.45, -0.5)],
    "cheek image-left": [(-0.75, 0.25), (-0.3, 0.25), (-0.3, 0.7), (-0.75, 0.7)],
    "cheek image-right": [(0.3, 0.25), (0.75, 0.25), (0.75, 0.7), (0.3, 0.7)],
    "neck": [(-0.4, 2.0), (0.4, 2.0), (0.4, 2.6), (-0.4, 2.6)],
}
REGIONS = ("mask", "face box", *READ_REGIONS)  # "mask": the skin the edit works on


def region_masks(height: int, width: int, box, landmarks):
    """Each attacker region of one face as (name, (y0, y1, x0, x1), bool mask of that window); None
    for a region outside the frame."""
    x1, y1, x2, y2 = np.asarray(box, np.float64)
    a0, b0 = max(0, int(x1)), max(0, int(y1))
    a1, b1 = max(a0, min(width, int(np.ceil(x2)))), max(b0, min(height, int(np.ceil(y2))))
    yield "face box", (b0, b1, a0, a1), np.ones((b1 - b0, a1 - a0), bool)
    m = face_frame(landmarks, box)
    for name, poly in READ_REGIONS.items():
        pts = np.asarray(poly, np.float64) @ m[:, :2].T + m[:, 2]
        a0, b0 = np.floor(pts.min(axis=0)).astype(int)
        a1, b1 = np.ceil(pts.max(axis=0)).astype(int) + 1
        a0, b0, a1, b1 = max(a0, 0), max(b0, 0), min(a1, width), min(b1, height)
        if a1 - a0 < 2 or b1 - b0 < 2:
            yield name, None, None
            continue
        mask = np.zeros((b1 - b0, a1 - a0), np.uint8)
        cv2.fillPoly(mask, [np.round((pts - (a0, b0)) * 16).astype(np.int32)], 1, lineType=cv2.LINE_8, shift=4)
        yield name, (b0, b1, a0, a1), mask.astype(bool)


def region_means(rgb: np.ndarray, box, landmarks) -> dict[str, np.ndarray]:
    """name -> mean RGB (3,) of each attacker's region of one face in this frame (NaN where the region
    lies outside the frame or has under 4 pixels)."""
    out = {}
    for name, win, mask in region_masks(rgb.shape[0], rgb.shape[1], box, landmarks):
        if win is None:
            out[name] = np.full(3, np.nan)
        else:  # the face box is its whole window: a slice's mean, no mask to index by
            px = rgb[win[0] : win[1], win[2] : win[3]]
            out[name] = _mean(px if name == "face box" else px[mask])
    return out


def cell_shares(skin, height: int, width: int, box, landmarks) -> np.ndarray:
    """(len(REGIONS), N_CELLS) float32: the share of each region's pixels (skin or not) that lie in each
    cell of `skin` (a skin.SkinRegion of this face and frame): a region's mean moves by shares @ offsets
    when the cells' offsets are added (rows of zeros for regions outside the frame)."""
    from faceveil.models.rppg.skin import N_CELLS

    out = np.zeros((len(REGIONS), N_CELLS), np.float32)
    if skin.n:
        labels = skin.parts[skin.mask]
        out[0] = np.bincount(labels, minlength=N_CELLS + 1)[1:] / skin.n
    for i, (_, win, mask) in enumerate(region_masks(height, width, box, landmarks), start=1):
        if win is None or not mask.any():
            continue
        y0, y1, x0, x1 = max(win[0], skin.y0), min(win[1], skin.y1), max(win[2], skin.x0), min(win[3], skin.x1)
        if y1 <= y0 or x1 <= x0:
            continue
        sel = (
            mask[y0 - win[0] : y1 - win[0], x0 - win[2] : x1 - win[2]]
            & skin.mask[y0 - skin.y0 : y1 - skin.y0, x0 - skin.x0 : x1 - skin.x0]
        )
        labels = skin.parts[y0 - skin.y0 : y1 - skin.y0, x0 - skin.x0 : x1 - skin.x0][sel]
        out[i] = np.bincount(labels, minlength=N_CELLS + 1)[1:] / mask.sum()
    return out


def _mean(px: np.ndarray) -> np.ndarray:
    px = px.reshape(-1, 3)
    return px.mean(axis=0, dtype=np.float64) if len(px) >= 4 else np.full(3, np.nan)
