"""Faces a detector finds in videos, for leak tests and the privacy benchmark."""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context

import numpy as np


def face_boxes(path: str, threshold: float = 0.3, every: int = 3, offset: int = 1) -> dict[int, np.ndarray]:
    """frame index -> boxes found, on every `every`-th frame starting at `offset`."""
    from faceveil.models.detectors import DetectorSettings, create_detector
    from faceveil.storage.media import iter_frames, probe_video

    det = create_detector("centerface", DetectorSettings(threshold=threshold, threads=1))
    info = probe_video(path)
    return {
        i: det.detect(rgb).boxes for i, rgb in iter_frames(path, info, select=lambda i: i % every == offset % every)
    }


def boxes_many(paths: list[str], **kw) -> dict[str, dict[int, np.ndarray]]:
    """face_boxes over many videos in parallel worker processes."""
    with ProcessPoolExecutor(max_workers=os.cpu_count() or 1, mp_context=get_context("spawn")) as ex:
        futs = {p: ex.submit(face_boxes, p, **kw) for p in paths}
        return {p: f.result() for p, f in futs.items()}


def inside_masks(after: dict[int, np.ndarray], masked: dict[int, np.ndarray], pad: float = 0.4) -> int:
    """Output faces whose centre lies in a region the pipeline masked (`masked`: frame -> the boxes of its
    detections manifest, grown by the mask's `pad`): the mask's own pattern taken for a face (a mosaic
    of the back of a head, say), not a face left visible."""
    n = 0
    for f, boxes in after.items():
        m = masked.get(f)
        if not len(boxes) or m is None or not len(m):
            continue
        cx, cy = (boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2
        w, h = (m[:, 2] - m[:, 0]) * pad, (m[:, 3] - m[:, 1]) * pad
        hit = (
            (cx[:, None] >= m[None, :, 0] - w)
            & (cx[:, None] <= m[None, :, 2] + w)
            & (cy[:, None] >= m[None, :, 1] - h)
            & (cy[:, None] <= m[None, :, 3] + h)
        )
        n += int(hit.any(axis=1).sum())
    return n


def leaks(before: dict[int, np.ndarray], after: dict[int, np.ndarray], iou: float = 0.3) -> tuple[int, int, int]:
    """(faces in the input, faces in the output, output faces where the input had a face)."""
    from faceveil.models.detections import iou_matrix

    n_in = sum(len(b) for b in before.values())
    n_out = sum(len(b) for b in after.values())
    same = sum(
        int((iou_matrix(b, before.get(f, np.zeros((0, 4), np.float32))).max(1, initial=0) >= iou).sum())
        for f, b in after.items()
        if len(b)
    )
    return n_in, n_out, same
