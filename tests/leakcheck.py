"""Counts the faces a detector finds in videos (for leak tests and the privacy benchmark)."""
from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context


def count_faces(path: str, threshold: float = 0.3, every: int = 3, offset: int = 1) -> tuple[int, int]:
    """(faces found, frames looked at) on every `every`-th frame starting at `offset`."""
    from faceveil.models.detectors import DetectorSettings, create_detector
    from faceveil.storage.media import iter_frames, probe_video

    det = create_detector("centerface", DetectorSettings(threshold=threshold, threads=1))
    info = probe_video(path)
    faces = frames = 0
    for i, rgb in iter_frames(path, info):
        if i % every == offset % every:
            faces += len(det.detect(rgb))
            frames += 1
    return faces, frames


def count_many(paths: list[str], **kw) -> dict[str, tuple[int, int]]:
    """count_faces over many videos in parallel worker processes."""
    with ProcessPoolExecutor(max_workers=os.cpu_count() or 1, mp_context=get_context("spawn")) as ex:
        futs = {p: ex.submit(count_faces, p, **kw) for p in paths}
        return {p: f.result() for p, f in futs.items()}
