"""The checks beside the encoder see exactly the frames a player of the output shows, and a check
that fails is reported without ever stalling the encoder."""

from pathlib import Path

import numpy as np
import pytest

from faceveil.models.detections import Detections
from faceveil.sample import make_sample_archive
from faceveil.storage.media import iter_frames, probe_video, transcode_video
from faceveil.pipeline.checks import BesideEncoder


class Recorder:
    """A FrameChecks stand-in that keeps what it is given (or fails on frame `fail_at`)."""

    def __init__(self, frames, fail_at=None):
        self.frames, self.fail_at, self.seen = set(frames), fail_at, {}

    def wants(self, i):
        return i in self.frames

    def add(self, i, original, anonymized, dets, regions, faces=None):
        if i == self.fail_at:
            raise RuntimeError(f"check of frame {i} failed")
        self.seen[i] = (original, anonymized)


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("beside")
    make_sample_archive(root, seconds=2.0, fps=25, size=(320, 180))
    return root / "cameras/lobby/clip_001.mp4"


@pytest.mark.parametrize("lossless", [False, True])
def test_checked_frames_are_the_decoded_output(clip, tmp_path, lossless):
    info = probe_video(str(clip))
    checks = Recorder({0, 10, 37, info.n_frames - 1})
    beside = BesideEncoder(checks, depth=2)

    def edit(i, rgb):
        beside.keep(i, rgb, Detections.empty(), np.zeros((0, 4), np.int32))
        rgb[:20, :20] = 255  # the "anonymization"
        return rgb

    out = tmp_path / ("out.mkv" if lossless else "out.mp4")
    transcode_video(str(clip), str(out), info, edit, lossless=lossless, tap=beside.tap)
    assert beside.finish() is checks and set(checks.seen) == checks.frames
    written = dict(iter_frames(str(out), probe_video(str(out)), select=checks.wants))
    for i, (original, checked) in checks.seen.items():
        assert (original[:20, :20] != 255).any()  # kept before it was changed
        if lossless:
            assert np.array_equal(checked, written[i])  # bit-exact: what the file holds
        else:
            assert np.abs(checked.astype(int) - written[i].astype(int)).max() <= 2  # same decode, colour rounding
        assert (checked[:20, :20] > 230).all()


def test_a_failing_check_is_reported_and_never_stalls_the_encoder(clip, tmp_path):
    info = probe_video(str(clip))
    checks = Recorder(range(info.n_frames), fail_at=3)  # every frame wanted, far more than `depth`
    beside = BesideEncoder(checks, depth=2)

    def edit(i, rgb):
        beside.keep(i, rgb, Detections.empty(), np.zeros((0, 4), np.int32))
        return rgb

    res = transcode_video(str(clip), str(tmp_path / "out.mp4"), info, edit, tap=beside.tap)
    assert res.frames_out == info.n_frames
    with pytest.raises(RuntimeError, match="check of frame 3 failed"):
        beside.finish()
