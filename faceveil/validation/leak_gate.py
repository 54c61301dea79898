"""The leak gate's geometry: how much of each found face the masks cover, which found faces are
unmasked (a leak), and whether a face is found again in a zoomed window around a box."""

from __future__ import annotations

import numpy as np

from faceveil.models.detections import Detections


def covered_fraction(boxes: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """(N,) share of each xyxy box's pixels where `mask` is True (an integral image: any number of boxes)."""
    if not len(boxes):
        return np.zeros(0)
    h, w = mask.shape
    ii = np.zeros((h + 1, w + 1), np.int64)
    ii[1:, 1:] = mask.astype(np.int64).cumsum(0).cumsum(1)
    b = np.round(np.asarray(boxes, np.float64)).astype(np.int64)
    x1, x2 = b[:, 0].clip(0, w), b[:, 2].clip(0, w)
    y1, y2 = b[:, 1].clip(0, h), b[:, 3].clip(0, h)
    inside = ii[y2, x2] - ii[y1, x2] - ii[y2, x1] + ii[y1, x1]
    area = (x2 - x1) * (y2 - y1)
    return np.where(area > 0, inside / np.maximum(area, 1), 1.0)


def unmasked_faces(
    found: list[tuple[str, Detections]], masked: np.ndarray, min_size: float, min_cover: float = 0.5
) -> list[dict]:
    """The leak gate's verdict on one output frame: faces any detector found that lie less than
    `min_cover` inside the masked pixels (duplicates across detectors merged, best score kept)."""
    from faceveil.models.detections import nms

    boxes, scores, names = [], [], []
    for name, d in found:
        d = d[d.sizes >= min_size] if len(d) else d
        keep = covered_fraction(d.boxes, masked) < min_cover
        boxes.append(d.boxes[keep])
        scores.append(d.scores[keep])
        names += [name] * int(keep.sum())
    if not names:
        return []
    b, sc = np.concatenate(boxes), np.concatenate(scores)
    return [
        {"detector": names[k], "score": round(float(sc[k]), 3), "box": [round(float(v), 1) for v in b[k]]}
        for k in nms(b, sc, 0.3)
    ]


def found_at(detectors: list, rgb: np.ndarray, box, iou: float = 0.3, window: int = 320) -> bool:
    """Whether any of `detectors` finds a face at `box` in `rgb`, run on a square `window` around it
    (cheap; and at the scale a whole frame is seen at, so a small face is not enlarged into one)."""
    from faceveil.models.detections import iou_matrix

    h, w = rgb.shape[:2]
    x1, y1, x2, y2 = (float(v) for v in box)
    side = int(max(window, 3 * (x2 - x1), 3 * (y2 - y1)))
    cx1 = int(min(max(0, (x1 + x2 - side) / 2), max(0, w - side)))
    cy1 = int(min(max(0, (y1 + y2 - side) / 2), max(0, h - side)))
    cx2, cy2 = min(w, cx1 + side), min(h, cy1 + side)
    crop = np.ascontiguousarray(rgb[cy1:cy2, cx1:cx2])
    target = np.array([[x1 - cx1, y1 - cy1, x2 - cx1, y2 - cy1]], np.float32)
    for d in detectors:
        found = d.detect(crop)
        if len(found) and iou_matrix(target, found.boxes).max() >= iou:
            return True
    return False
