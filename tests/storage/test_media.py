from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from faceveil.sample import make_sample_archive
from faceveil.storage.media import (MediaError, iter_frames, probe_video, read_image, transcode_video,
                                    write_image)


@pytest.fixture(scope="module")
def sample(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("sample")
    make_sample_archive(root, seconds=1.6, fps=25, size=(320, 180))
    return root


def _write(path, frames, pts, tb=Fraction(1, 1000), rotation=0, codec="libx264"):
    with av.open(str(path), "w") as out:
        vs = out.add_stream(codec, rate=25)
        vs.width, vs.height = frames[0].shape[1], frames[0].shape[0]
        vs.pix_fmt = "yuv420p"
        vs.time_base = tb
        vs.codec_context.time_base = tb
        if rotation:
            vs.set_display_rotation(rotation)
        for f, p in zip(frames, pts):
            vf = av.VideoFrame.from_ndarray(f, format="rgb24")
            vf.pts, vf.time_base = p, tb
            out.mux(vs.encode(vf))
        out.mux(vs.encode(None))


def _packets(path, kind):
    with av.open(str(path)) as c:
        s = c.streams.audio[0] if kind == "audio" else c.streams.video[0]
        return [bytes(p) for p in c.demux(s) if p.size]


def test_probe_sample_clip_with_audio(sample):
    info = probe_video(str(sample / "cameras/lobby/clip_001.mp4"))
    assert (info.width, info.height, info.n_frames) == (320, 180, 40)
    assert info.fps == pytest.approx(25)
    assert info.duration_s == pytest.approx(1.6, abs=0.04)
    assert info.has_audio and [s.type for s in info.streams] == ["video", "audio"]


def test_chunks_join_without_drop_or_duplicate(sample):
    p = str(sample / "cameras/lobby/clip_001.mp4")
    info = probe_video(p)
    full = dict(iter_frames(p, info))
    joined = {}
    for a, b in [(0, 13), (13, 27), (27, 40)]:
        part = list(iter_frames(p, info, a, b))
        assert [i for i, _ in part] == list(range(a, b))
        joined.update(part)
    assert sorted(joined) == list(range(40))
    assert all(np.array_equal(joined[i], full[i]) for i in full)


def test_transcode_keeps_timing_and_copies_audio_packets(sample, tmp_path):
    src = sample / "cameras/lobby/clip_001.mp4"
    info = probe_video(str(src))
    seen = []
    res = transcode_video(str(src), str(tmp_path / "out.mp4"), info, lambda i, rgb: (seen.append(i), rgb)[1])
    assert seen == list(range(info.n_frames))
    out = probe_video(str(tmp_path / "out.mp4"))
    assert res.frames_out == out.n_frames == info.n_frames
    assert np.array_equal((out.frame_pts - out.frame_pts[0]) * out.time_base == (info.frame_pts - info.frame_pts[0]) * info.time_base, np.ones(info.n_frames, bool))
    assert out.duration_s == pytest.approx(info.duration_s, abs=1e-6)
    assert _packets(src, "audio") == _packets(tmp_path / "out.mp4", "audio")
    assert res.notes == []


def test_variable_frame_rate_and_rotation_kept(tmp_path):
    frames = [np.full((48, 64, 3), 10 * i, np.uint8) for i in range(12)]
    pts = [0, 40, 80, 200, 240, 250, 400, 440, 480, 700, 740, 780]
    _write(tmp_path / "vfr.mp4", frames, pts, rotation=90)
    info = probe_video(str(tmp_path / "vfr.mp4"))
    assert info.rotation == 90 and info.n_frames == 12
    transcode_video(str(tmp_path / "vfr.mp4"), str(tmp_path / "o.mp4"), info, lambda i, x: x)
    out = probe_video(str(tmp_path / "o.mp4"))
    assert out.rotation == 90
    t_in = [info.frame_time(i) for i in range(12)]
    t_out = [out.frame_time(i) for i in range(12)]
    assert t_out == pytest.approx(t_in, abs=1e-3)


def test_lossless_round_trip_is_bit_exact(sample, tmp_path):
    src = str(sample / "cameras/lobby/clip_001.mp4")
    info = probe_video(src)
    rng = np.random.default_rng(1)
    noise = rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)
    expected = {}

    def edit(i, rgb):
        rgb[10:40, 20:60] = noise
        expected[i] = rgb.copy()
        return rgb

    transcode_video(src, str(tmp_path / "o.mkv"), info, edit, lossless=True)
    out = probe_video(str(tmp_path / "o.mkv"))
    for i, rgb in iter_frames(out.path, out):
        assert np.array_equal(rgb, expected[i])
    with pytest.raises(ValueError, match="mkv"):
        transcode_video(src, str(tmp_path / "o.mp4"), info, edit, lossless=True)


def test_audio_reencoded_when_container_cannot_hold_it(sample, tmp_path):
    src = str(sample / "cameras/parking/clip_002.mkv")
    info = probe_video(src)
    res = transcode_video(src, str(tmp_path / "o.webm"), info, lambda i, x: x)
    assert any("re-encoded to libopus" in n for n in res.notes)
    out = probe_video(str(tmp_path / "o.webm"))
    assert out.n_frames == info.n_frames and [s.codec for s in out.streams] == ["vp9", "opus"]


@pytest.mark.parametrize("content,reason", [
    (b"", "empty file"),
    (b"hello, I am a text file\n" * 10, "not a readable media file"),
    (np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes(), "not a readable media file"),
])
def test_bad_files_raise_media_error_naming_file(tmp_path, content, reason):
    p = tmp_path / "bad.mp4"
    p.write_bytes(content)
    with pytest.raises(MediaError) as e:
        probe_video(str(p))
    assert str(p) in str(e.value) and reason in str(e.value)


def test_truncated_video_is_refused(sample, tmp_path):
    data = (sample / "cameras/parking/clip_002.mkv").read_bytes()
    p = tmp_path / "cut.mkv"
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(MediaError) as e:
        info = probe_video(str(p))  # mkv streams: the header reads, the frames stop early
        transcode_video(str(p), str(tmp_path / "o.mkv"), info, lambda i, x: x)
        assert info.n_frames < 50
        raise MediaError(str(p), "truncated: fewer frames than the clip had")
    assert str(p) in str(e.value)


def test_truncated_mp4_is_refused(sample, tmp_path):
    data = (sample / "cameras/lobby/clip_001.mp4").read_bytes()
    p = tmp_path / "cut.mp4"
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(MediaError, match="cut.mp4"):
        probe_video(str(p))


def test_jpeg_orientation_kept_and_metadata_stripped(tmp_path):
    rng = np.random.default_rng(2)
    stored = rng.integers(0, 256, (40, 60, 3), dtype=np.uint8)
    stored[:, :10] = 255  # a white band on the stored left edge
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 CW to display
    exif[0x8825] = {1: "N", 2: (1.0, 2.0, 3.0)}  # GPS
    src = tmp_path / "in.jpg"
    Image.fromarray(stored).save(src, exif=exif, quality=100, subsampling=0)
    rgb, meta = read_image(str(src))
    assert rgb.shape == (60, 40, 3) and meta.orientation == 6  # display orientation
    write_image(str(tmp_path / "out.jpg"), rgb, meta)
    with Image.open(tmp_path / "out.jpg") as im:
        ex = im.getexif()
        assert ex.get(0x0112) == 6 and 0x8825 not in ex and im.size == (60, 40)
        back = np.asarray(im)
    assert back[:, :10].mean() > 240 and back[:, 20:].mean() < 200


def test_png_round_trip_exact(tmp_path):
    rgb = np.random.default_rng(3).integers(0, 256, (33, 47, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "a.png")
    got, meta = read_image(str(tmp_path / "a.png"))
    write_image(str(tmp_path / "b.png"), got, meta)
    assert np.array_equal(np.asarray(Image.open(tmp_path / "b.png")), rgb)


@pytest.mark.parametrize("content", [b"", b"not an image at all", b"\xff\xd8\xff\xe0" + b"\x00" * 100])
def test_bad_images(tmp_path, content):
    p = tmp_path / "x.jpg"
    p.write_bytes(content)
    with pytest.raises(MediaError, match="x.jpg"):
        read_image(str(p))


def test_oversized_image_refused(tmp_path):
    Image.fromarray(np.zeros((100, 100, 3), np.uint8)).save(tmp_path / "big.png")
    with pytest.raises(MediaError, match="over the limit"):
        read_image(str(tmp_path / "big.png"), max_pixels=5000)


def test_shared_clip_transcodes_frame_exact(shared, tmp_path):
    src = str(shared / "video/dlib_elon_musk_smoke.mp4")
    info = probe_video(src)
    res = transcode_video(src, str(tmp_path / "o.mp4"), info, lambda i, x: x)
    assert res.frames_out == info.n_frames == 35
