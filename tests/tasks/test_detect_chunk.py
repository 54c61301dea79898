"""detect-chunk with the detections of an earlier pass: the leak gate's second pass looks only at
the frames the first pass did not, and what it reuses is exactly what it would have found."""

from dataclasses import replace

import numpy as np
from skimage import data

from faceveil.config import AnonymizeConfig
from faceveil.models.detections import Detections
from faceveil.tasks.detect import detect_chunk
from faceveil.tasks.discover import discover
from faceveil.tasks.plan import plan_video

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from pulseclip import write_video  # noqa: E402


def test_second_pass_reuses_the_first_pass_frames(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    face = np.ascontiguousarray(data.astronaut()[:256, 64:320])
    write_video(str(src / "a.mkv"), np.stack([np.roll(face, k, axis=1) for k in range(24)]), 24.0)
    config = AnonymizeConfig.of(src=str(src), dest=str(tmp_path / "out"), workers=1, detect_every=4)
    (item,), _ = discover(config)
    plan = plan_video(config, item)
    (chunk,) = plan.chunks
    first = detect_chunk(config, item, plan.info, chunk)
    assert first.frames == [0, 4, 8, 12, 16, 20, 23] and all(len(d) for d in first.dets)
    again = config.for_run(second_pass=("centerface",))  # every 2nd frame, same detectors
    fresh = detect_chunk(again, item, plan.info, chunk)
    reused = detect_chunk(again, item, plan.info, chunk, first)
    assert reused.frames == fresh.frames == list(range(0, 24, 2)) + [23]
    for a, b in zip(fresh.dets, reused.dets):  # reused frames hold exactly what a fresh look finds
        np.testing.assert_allclose(a.boxes, b.boxes, atol=1e-3)
    # a known frame is taken as it is, never looked at again (a marker box no detector would give)
    marker = Detections([[1, 2, 3, 4]], [0.5])
    known = replace(first, dets=[marker if f == 8 else d for f, d in zip(first.frames, first.dets)])
    taken = detect_chunk(again, item, plan.info, chunk, known)
    assert taken.dets[taken.frames.index(8)] is marker
    # another chunk's or a failed pass's detections are not used
    other = replace(first, chunk=replace(chunk, start=chunk.start + 1))
    assert (
        detect_chunk(again, item, plan.info, chunk, replace(other, dets=[marker] * len(first.frames))).dets[4]
        is not marker
    )
