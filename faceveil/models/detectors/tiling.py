"""Detection on frames larger than a detector's input cap (4K and 8K cameras): overlapping tiles at
full resolution for the small faces, plus one pass over the whole frame scaled down for the faces
too big for a tile's overlap. A network's memory grows with its input (CenterFace at 4K: 1.5 GB
in bf16, 4 GB in fp32), a tile's does not; the tiles cost about 1.2x the whole frame's compute.

A face no larger than the overlap lies whole inside some tile, so a box that touches a tile's inner
edge (a face the tile cuts) is dropped there: the neighbouring tile or the whole-frame pass has it."""

from __future__ import annotations

import math
from typing import Callable

import cv2
import numpy as np

from faceveil.models.detections import Detections, merge

OVERLAP = 192  # px: faces up to this size are found whole in a tile
WHOLE_FACE_PX = 48  # the whole-frame pass is scaled so a face of OVERLAP px is this big


def tiles(
    width: int, height: int, max_pixels: int, overlap: int = OVERLAP, align: int = 32
) -> list[tuple[int, int, int, int]]:
    """(x0, y0, w, h) of the fewest overlapping tiles (sides multiples of `align`, each at most
    `max_pixels`) that cover the frame; a frame within the cap is one tile."""
    if width * height <= max_pixels:
        return [(0, 0, width, height)]
    best = None
    for nx in range(1, width // overlap + 2):
        tw = _side(width, nx, overlap, align)
        th_max = max_pixels // tw
        if th_max < 2 * overlap:
            continue
        ny = max(1, math.ceil((height - overlap) / max(th_max - overlap, 1)))
        while _side(height, ny, overlap, align) * tw > max_pixels:
            ny += 1
        if best is None or nx * ny < best[0] * best[1]:
            best = (nx, ny)
    if best is None:
        raise ValueError(f"cannot tile {width}x{height} into tiles of at most {max_pixels} pixels")
    nx, ny = best
    tw, th = _side(width, nx, overlap, align), _side(height, ny, overlap, align)
    xs = _starts(width, tw, nx)
    ys = _starts(height, th, ny)
    return [(x, y, min(tw, width), min(th, height)) for y in ys for x in xs]


def _side(length: int, n: int, overlap: int, align: int) -> int:
    side = math.ceil((length + (n - 1) * overlap) / n)
    return min(-(-side // align) * align, length) if n > 1 else length


def _starts(length: int, side: int, n: int) -> list[int]:
    if n == 1:
        return [0]
    return [round(k * (length - side) / (n - 1)) for k in range(n)]


def detect_tiled(detect: Callable[[np.ndarray], Detections], rgb: np.ndarray, max_pixels: int) -> Detections:
    """`detect` (faces in an RGB frame within the cap) over the tiles of `rgb` and its scaled-down whole."""
    h, w = rgb.shape[:2]
    parts = []
    for x0, y0, tw, th in tiles(w, h, max_pixels):
        d = detect(np.ascontiguousarray(rgb[y0 : y0 + th, x0 : x0 + tw]))
        if len(d):
            b = d.boxes
            cut = (
                ((b[:, 0] <= 1) & (x0 > 0))
                | ((b[:, 2] >= tw - 1) & (x0 + tw < w))
                | ((b[:, 1] <= 1) & (y0 > 0))
                | ((b[:, 3] >= th - 1) & (y0 + th < h))
            )
            parts.append(d[~cut].translate(x0, y0))
    s = min(WHOLE_FACE_PX / OVERLAP, math.sqrt(max_pixels / (w * h)))
    small = cv2.resize(rgb, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)
    whole = detect(small).scale(w / small.shape[1], h / small.shape[0])
    parts.append(whole[whole.sizes >= OVERLAP / 2])  # the smaller ones lie whole in a tile, found sharper there
    return merge(parts)
