"""Display orientation: frames reach every stage upright and go back to their coded orientation.

The expected upright frames are built independently of faceveil's matrix code, from PyAV's documented
meaning of `set_display_rotation(degrees, hflip, vflip)`: a counter-clockwise rotation, mirrored after it."""

from fractions import Fraction

import av
import numpy as np
import pytest

from faceveil.storage.media import iter_frames, probe_video, transcode_video
from faceveil.storage.orientation import Orientation

ORIENTATIONS = [(0, False), (90, False), (180, False), (270, False), (0, True), (90, True), (180, True), (270, True)]


def displayed(coded: np.ndarray, degrees: int, hflip: bool) -> np.ndarray:
    """What a player shows for a coded frame (np.rot90 turns counter-clockwise)."""
    shown = np.rot90(coded, degrees // 90)
    return shown[:, ::-1] if hflip else shown


def pattern(i: int, h: int = 48, w: int = 80) -> np.ndarray:
    """An asymmetric test picture: no rotation or mirror of it equals another."""
    rng = np.random.default_rng(i)
    a = rng.integers(0, 255, (h // 8, w // 8, 3), dtype=np.uint8)
    return np.kron(a, np.ones((8, 8, 1), np.uint8))


def write_clip(path, frames, degrees: int, hflip: bool, codec="ffv1"):
    with av.open(str(path), "w") as out:
        s = out.add_stream(codec, rate=10)
        s.width, s.height = frames[0].shape[1], frames[0].shape[0]
        s.pix_fmt = "bgr0" if codec == "ffv1" else "yuv420p"
        if degrees or hflip:
            s.set_display_rotation(degrees, hflip=hflip)
        for i, f in enumerate(frames):
            vf = av.VideoFrame.from_ndarray(f, format="rgb24")
            vf.pts, vf.time_base = i, Fraction(1, 10)
            out.mux(s.encode(vf))
        out.mux(s.encode(None))


@pytest.mark.parametrize("degrees,hflip", ORIENTATIONS)
def test_frames_are_upright_and_written_back_coded(tmp_path, degrees, hflip):
    coded = [pattern(i) for i in range(4)]
    src = tmp_path / "c.mkv"
    write_clip(src, coded, degrees, hflip)
    info = probe_video(str(src))
    want = [displayed(c, degrees, hflip) for c in coded]
    assert (info.height, info.width) == want[0].shape[:2]
    assert info.coded_size == (80, 48)
    got = dict(iter_frames(str(src), info))
    for i, w in enumerate(want):
        assert np.array_equal(got[i], w), f"frame {i} is not what a player shows"
    seen = {}

    def edit(i, rgb):  # the editor sees the displayed frame; mark its top-left corner
        seen[i] = rgb.copy()
        rgb[:8, :8] = 255
        return rgb

    out = tmp_path / "o.mkv"
    transcode_video(str(src), str(out), info, edit, lossless=True)
    assert all(np.array_equal(seen[i], want[i]) for i in range(4))
    oi = probe_video(str(out))
    assert (oi.rotation, oi.orientation, oi.width, oi.height) == (
        info.rotation,
        info.orientation,
        info.width,
        info.height,
    )
    with av.open(str(out)) as c:  # stored in the coded orientation, as the input was
        stored = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    assert stored[0].shape == coded[0].shape
    for i, w in enumerate(want):
        marked = w.copy()
        marked[:8, :8] = 255
        assert np.array_equal(displayed(stored[i], degrees, hflip), marked)


@pytest.mark.parametrize("degrees,hflip", ORIENTATIONS)
def test_upright_and_coded_are_inverse(degrees, hflip):
    a = pattern(7, 16, 40)
    m = {0: (1, 0, 0, 1), 90: (0, -1, 1, 0), 180: (-1, 0, 0, -1), 270: (0, 1, -1, 0)}[degrees]  # PyAV's matrices
    a0, b, c, d = m
    if hflip:
        a0, c = -a0, -c
    o = Orientation.from_matrix([a0 * 65536, b * 65536, 0, c * 65536, d * 65536, 0, 0, 0, 1 << 30])
    assert np.array_equal(o.upright(a), displayed(a, degrees, hflip))
    assert np.array_equal(o.coded(o.upright(a)), a)
    assert o.display_size(40, 16) == displayed(a, degrees, hflip).shape[1::-1]
