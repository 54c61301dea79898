"""Which videos are encoded in pieces side by side, and which by one writer."""

from __future__ import annotations

from dataclasses import replace

import pytest

from faceveil.config import AnonymizeConfig
from faceveil.pipeline.jobs import Chunk, MediaItem
from faceveil.tasks.plan import segments_of

CHUNKS = [Chunk(0, 0, 300), Chunk(1, 300, 600), Chunk(2, 600, 750)]


class _Info:
    n_frames = 750


@pytest.mark.parametrize(
    "options, rel, pieces",
    [
        ({"method": "blur"}, "cam/a.mp4", 3),
        ({"method": "replace"}, "cam/a.mp4", 1),  # one surrogate per track: made from the track's first face
        ({"method": "blur", "reversible": True}, "cam/a.mp4", 1),  # one vault writer
        ({"method": "blur"}, "cam/a.avi", 1),
    ],
)
def test_segments_side_by_side_or_one_writer(options, rel, pieces, tmp_path):
    config = AnonymizeConfig.of(src=str(tmp_path), dest=str(tmp_path / "out"), method=options["method"])
    config.sealing = replace(
        config.sealing, reversible=options.get("reversible", False)
    )  # (its key is not tested here)
    segments = segments_of(config, MediaItem(rel, "video", "x"), _Info(), CHUNKS)
    assert len(segments) == pieces
    assert segments[0].start == 0 and segments[-1].stop == 750
