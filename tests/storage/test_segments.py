"""A video encoded in segments side by side and joined is the video one pass writes: every frame, the
same timestamps and duration, the audio packet for packet, the display matrix; pieces that do not
fit together are refused."""

import sys
from pathlib import Path

import av
import numpy as np
import pytest

from faceveil.sample import make_sample_archive
from faceveil.storage.media import MediaError, iter_frames, probe_video, transcode_video
from faceveil.storage.segments import encode_segment, join_segments, segment_suffix


@pytest.fixture(scope="module")
def sample(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("segments")
    make_sample_archive(root, seconds=2.4, fps=25, size=(320, 180))
    return root


def _mark(i, rgb):
    rgb[:16, :16] = 255
    return rgb


def _audio_packets(path):
    with av.open(str(path)) as c:
        return [(bytes(p), p.pts) for p in c.demux(c.streams.audio[0]) if p.size] if c.streams.audio else []


@pytest.mark.parametrize(
    "rel,ext,lossless",
    [
        ("cameras/lobby/clip_001.mp4", ".mp4", False),
        ("cameras/parking/clip_002.mkv", ".mkv", False),
        ("cameras/lobby/clip_001.mp4", ".mkv", True),
        ("cameras/lobby/clip_001.mp4", ".ts", False),
    ],
)  # MP4 pieces into MPEG-TS
def test_joined_segments_are_the_one_pass_video(sample, tmp_path, rel, ext, lossless):
    src = str(sample / rel)
    info = probe_video(src)
    cuts = [0, 17, info.n_frames // 2, info.n_frames]
    parts = []
    for k, (a, b) in enumerate(zip(cuts, cuts[1:])):
        parts.append(tmp_path / f"part{k}{segment_suffix(ext, lossless)}")
        assert encode_segment(src, str(parts[-1]), info, a, b, _mark, only={a, b - 1}, lossless=lossless) == b - a
    res = join_segments(src, str(tmp_path / f"joined{ext}"), info, [str(p) for p in parts])
    transcode_video(src, str(tmp_path / f"one{ext}"), info, _mark, lossless=lossless)
    one = probe_video(str(tmp_path / f"one{ext}"))
    joined = probe_video(str(tmp_path / f"joined{ext}"))
    assert res.frames_out == joined.n_frames == one.n_frames == info.n_frames
    assert np.array_equal(joined.frame_pts, one.frame_pts)
    assert joined.duration_s == pytest.approx(one.duration_s, abs=1e-6)
    assert [s.type for s in joined.streams] == [s.type for s in one.streams]
    assert _audio_packets(tmp_path / f"joined{ext}") == _audio_packets(tmp_path / f"one{ext}")
    frames = dict(iter_frames(str(tmp_path / f"joined{ext}"), joined))
    for i in (0, 16, 17, cuts[2] - 1, cuts[2], info.n_frames - 1):  # segment ends were edited, the middle was not
        marked = (frames[i][:16, :16] > 230).all()
        assert marked == (i in {0, 16, 17, cuts[2] - 1, cuts[2], info.n_frames - 1}), i
    if lossless:
        want = dict(iter_frames(str(tmp_path / f"one{ext}"), one))
        assert all(np.array_equal(frames[i], want[i]) for i in range(info.n_frames))


def test_display_matrix_is_kept(tmp_path):
    sys.path.insert(0, str(Path(__file__).parent))
    from test_orientation import pattern, write_clip

    src = tmp_path / "turned.mkv"
    write_clip(src, [pattern(i) for i in range(12)], 90, False, codec="libx264")
    src_mp4 = str(src)
    info = probe_video(src_mp4)
    parts = [str(tmp_path / "a.mp4"), str(tmp_path / "b.mp4")]
    encode_segment(src_mp4, parts[0], info, 0, 6, _mark)
    encode_segment(src_mp4, parts[1], info, 6, 12, _mark)
    join_segments(src_mp4, str(tmp_path / "j.mkv"), info, parts)
    out = probe_video(str(tmp_path / "j.mkv"))
    assert (out.rotation, out.orientation, out.width, out.height) == (
        info.rotation,
        info.orientation,
        info.width,
        info.height,
    )


def test_segments_that_do_not_fit_are_refused(sample, tmp_path):
    src = str(sample / "cameras/lobby/clip_001.mp4")
    info = probe_video(src)
    a, b = str(tmp_path / "a.mp4"), str(tmp_path / "b.mp4")
    encode_segment(src, a, info, 0, 20, _mark, preset="veryfast")
    encode_segment(src, b, info, 20, info.n_frames, _mark, preset="ultrafast")  # other codec parameters
    with pytest.raises(MediaError, match="other codec parameters"):
        join_segments(src, str(tmp_path / "j.mp4"), info, [a, b])
    assert not (tmp_path / "j.mp4").exists()
    encode_segment(src, b, info, 20, 40, _mark)  # frames 40.. missing
    with pytest.raises(MediaError, match="joined 40 frames"):
        join_segments(src, str(tmp_path / "j.mp4"), info, [a, b])
    assert not (tmp_path / "j.mp4").exists()
