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


def region_means(rgb: np.ndarray, box, landmarks) -> dict[str, np.ndarray]:
    """name -> mean RGB (3,) of each attacker's region of one face in this frame (NaN where the region
    lies outside the frame or has under 4 pixels)."""
    h, w = rgb.shape[:2]
    x1, y1, x2, y2 = np.asarray(box, np.float64)
    out = {"face box": _mean(rgb[max(0, int(y1)):max(0, int(np.ceil(y2))), max(0, int(x1)):max(0, int(np.ceil(x2)))])}
    m = face_frame(landmarks, box)
    for name, poly in READ_REGIONS.items():
        pts = np.asarray(poly, np.float64) @ m[:, :2].T + m[:, 2]
        a0, b0 = np.floor(pts.min(axis=0)).astype(int)
        a1, b1 = np.ceil(pts.max(axis=0)).astype(int) + 1
        a0, b0, a1, b1 = max(a0, 0), max(b0, 0), min(a1, w), min(b1, h)
        if a1 - a0 < 2 or b1 - b0 < 2:
            out[name] = np.full(3, np.nan)
            continue
        mask = np.zeros((b1 - b0, a1 - a0), np.uint8)
        cv2.fillPoly(mask, [np.round((pts - (a0, b0)) * 16).astype(np.int32)], 1, lineType=cv2.LINE_8, shift=4)
        out[name] = _mean(rgb[b0:b1, a0:a1][mask.astype(bool)])
    return out


def _mean(px: np.ndarray) -> np.ndarray:
    px = px.reshape(-1, 3)
    return px.mean(axis=0, dtype=np.float64) if len(px) >= 4 else np.full(3, np.nan)
