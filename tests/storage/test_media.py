from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from faceveil.sample import make_sample_archive
from faceveil.storage.media import MediaError, iter_frames, probe_video, read_image, transcode_video, write_image


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
    same = (out.frame_pts - out.frame_pts[0]) * out.time_base == (info.frame_pts - info.frame_pts[0]) * info.time_base
    assert np.array_equal(same, np.ones(info.n_frames, bool))
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


@pytest.mark.parametrize(
    "content,reason",
    [
        (b"", "empty file"),
        (b"hello, I am a text file\n" * 10, "not a readable media file"),
        (np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes(), "not a readable media file"),
    ],
)
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
    with pytest.raises(MediaError, match="truncated") as e:
        probe_video(str(p))  # the mkv header reads; its data ends before the duration it states
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


@pytest.mark.shared_data
def test_shared_clip_transcodes_frame_exact(shared, tmp_path):
    src = str(shared / "video/dlib_elon_musk_smoke.mp4")
    info = probe_video(src)
    res = transcode_video(src, str(tmp_path / "o.mp4"), info, lambda i, x: x)
    assert res.frames_out == info.n_frames == 35


# ---------------------------------------------------------------- synthetic clips made here


def _clip(
    path, n=50, size=(64, 48), codec="libx264", audio="aac", rotation=0, pts=None, tb=None, audio_start=0, options=None
):
    """A small clip: a moving gradient (every frame different), optionally a sine audio track."""
    w, h = size
    with av.open(str(path), "w", options=options or {}) as out:
        vs = out.add_stream(codec, rate=25)
        vs.width, vs.height = w, h
        vs.pix_fmt = "yuv420p" if w % 2 == 0 and h % 2 == 0 else "yuv444p"
        if tb:
            vs.time_base = vs.codec_context.time_base = tb
        if rotation:
            vs.set_display_rotation(rotation)
        a = out.add_stream(audio, rate=48000) if audio else None
        if a:
            a.layout = "stereo"
        yy, xx = np.mgrid[0:h, 0:w]
        for i in range(n):
            img = np.stack([(xx * 4 + i * 3) % 256, (yy * 4) % 256, np.full_like(xx, i * 5 % 256)], -1)
            vf = av.VideoFrame.from_ndarray(img.astype(np.uint8), format="rgb24")
            vf.pts = pts[i] if pts else i
            if tb:
                vf.time_base = tb
            out.mux(vs.encode(vf))
        out.mux(vs.encode(None))
        if a:
            t = audio_start
            while t < audio_start + 48000 * n // 25:
                x = (0.3 * np.sin(2 * np.pi * 440 * (np.arange(960) + t) / 48000)).astype(np.float32)
                af = av.AudioFrame.from_ndarray(np.stack([x, x]), format="fltp", layout="stereo")
                af.sample_rate, af.pts = 48000, t
                t += 960
                out.mux(a.encode(af))
            out.mux(a.encode(None))
    return str(path)


def _identity(i, rgb):
    return rgb


def _first_audio_s(path):
    with av.open(str(path)) as c:
        s = c.streams.audio[0]
        return float(next(p for p in c.demux(s) if p.size).pts * s.time_base)


def test_probe_values(tmp_path):
    info = probe_video(_clip(tmp_path / "a.mp4", size=(160, 120)))
    assert (info.width, info.height, info.n_frames, info.rotation) == (160, 120, 50, 0)
    assert info.fps == 25 and info.duration_s == pytest.approx(2.0) and info.frame_time(25) == pytest.approx(1.0)
    assert info.frame_pts.dtype == np.int64 and np.all(np.diff(info.frame_pts) > 0)
    assert [(s.index, s.type, s.codec) for s in info.streams] == [(0, "video", "h264"), (1, "audio", "aac")]
    assert info.has_audio and isinstance(info.time_base, Fraction)


@pytest.mark.parametrize(
    "name,kw",
    [
        (
            "vfr.mp4",
            {
                "pts": [0, 40, 80, 200, 240, 250, 400, 440, 480, 700] + [740 + 40 * k for k in range(30)],
                "tb": Fraction(1, 1000),
                "n": 40,
            },
        ),
        ("b.avi", {"audio": "mp3"}),  # avi: no stored pts, B-frames come out with guessed ones
        ("c.mkv", {}),
        ("d.webm", {"codec": "libvpx-vp9", "audio": "libopus"}),
        ("e.ts", {}),  # MPEG-TS, one keyframe: a seek to a later frame lands nowhere, decoding starts over
        ("f.m2ts", {"audio": "ac3"}),
    ],
)
def test_chunks_with_seek_equal_full_decode(tmp_path, name, kw):
    p = _clip(tmp_path / name, **kw)
    info = probe_video(p)
    full = list(iter_frames(p, info))
    assert [i for i, _ in full] == list(range(info.n_frames))
    cuts = [0, 7, 19, 20, 33, info.n_frames]
    joined = [fr for a, b in zip(cuts, cuts[1:]) for fr in iter_frames(p, info, a, b)]
    assert [i for i, _ in joined] == list(range(info.n_frames))
    assert all(np.array_equal(x, y) for (_, x), (_, y) in zip(full, joined))
    assert all(
        x.flags.c_contiguous and x.flags.writeable and x.shape == (48, 64, 3) and x.dtype == np.uint8 for _, x in full
    )
    assert len({x.tobytes() for _, x in full}) == info.n_frames  # distinct frames, none repeated


@pytest.mark.parametrize(
    "src_name,src_kw,dst,note",
    [
        ("a.mp4", {}, "o.mkv", None),
        ("a.mp4", {}, "o.mov", None),
        ("a.mp4", {}, "o.avi", None),
        ("w.webm", {"codec": "libvpx-vp9", "audio": "libopus"}, "o.webm", None),
        ("w.webm", {"codec": "libvpx-vp9", "audio": "libopus"}, "o.mp4", None),
        ("a.mp4", {}, "o.webm", "re-encoded to libopus"),
        ("t.ts", {}, "o.ts", None),  # MPEG-TS: AAC copied, not re-encoded
        ("t.mts", {"audio": "ac3"}, "o.mts", None),
        ("a.mp4", {}, "o.m4v", None),
        ("a.mp4", {}, "o.3gp", None),
    ],
)
def test_transcode_across_containers(tmp_path, src_name, src_kw, dst, note):
    src = _clip(tmp_path / src_name, **src_kw)
    info = probe_video(src)
    res = transcode_video(src, str(tmp_path / dst), info, _identity)
    out = probe_video(str(tmp_path / dst))
    assert res.frames_in == res.frames_out == out.n_frames == info.n_frames
    assert (out.width, out.height) == (info.width, info.height)
    assert [out.frame_time(i) for i in range(out.n_frames)] == pytest.approx(
        [info.frame_time(i) for i in range(info.n_frames)], abs=1e-6
    )
    assert out.duration_s == pytest.approx(info.duration_s, abs=1e-3)
    assert [s.type for s in res.streams_out] == ["video", "audio"]
    if note is None:
        assert res.notes == [] and _packets(src, "audio") == _packets(tmp_path / dst, "audio")
    else:
        assert any(note in x for x in res.notes)


def test_reencoded_audio_keeps_its_start_offset(tmp_path):
    src = _clip(tmp_path / "late.mp4", audio_start=24000)  # audio starts 0.5 s after the video
    transcode_video(src, str(tmp_path / "o.webm"), probe_video(src), _identity)
    assert _first_audio_s(tmp_path / "o.webm") == pytest.approx(_first_audio_s(src), abs=0.03)


@pytest.mark.parametrize("dst,lossless", [("o.mp4", False), ("o.mkv", False), ("o.webm", False), ("o.mkv", True)])
def test_rotation_kept(tmp_path, dst, lossless):
    src = _clip(tmp_path / "r.mp4", rotation=270, audio=None)
    info = probe_video(src)
    assert info.rotation == 270
    transcode_video(src, str(tmp_path / dst), info, _identity, lossless=lossless)
    assert probe_video(str(tmp_path / dst)).rotation == 270


def test_rotation_lost_in_avi_is_noted(tmp_path):
    src = _clip(tmp_path / "r.mp4", rotation=90, audio=None)
    res = transcode_video(src, str(tmp_path / "o.avi"), probe_video(src), _identity)
    assert any("rotation" in x for x in res.notes)


@pytest.mark.parametrize("dst", ["o.mp4", "o.webm"])
def test_odd_size_kept(tmp_path, dst):
    src = _clip(tmp_path / "odd.mp4", size=(65, 49), audio=None)
    transcode_video(src, str(tmp_path / dst), probe_video(src), _identity)
    out = probe_video(str(tmp_path / dst))
    assert (out.width, out.height, out.n_frames) == (65, 49, 50)


def test_edit_gets_indices_and_must_keep_shape(tmp_path):
    src = _clip(tmp_path / "a.mp4", audio=None)
    info = probe_video(src)
    with pytest.raises(ValueError, match="edit must return"):
        transcode_video(src, str(tmp_path / "o.mp4"), info, lambda i, x: x[:10])
    assert not (tmp_path / "o.mp4").exists()  # nothing half-written is left


def test_other_streams_kept_or_dropped_with_notes(tmp_path):
    base = _clip(tmp_path / "a.mkv")
    src = tmp_path / "rich.mkv"
    with av.open(base) as inp, av.open(str(src), "w") as out:
        m = {s.index: out.add_stream_from_template(s) for s in inp.streams}
        sub = out.add_mux_stream("subrip")
        sub.time_base = Fraction(1, 1000)
        out.add_attachment("font.ttf", "font/ttf", b"\0font")
        out.add_attachment("cover.jpg", "image/jpeg", b"\xff\xd8cover")  # cover art may show a face
        for t in range(3):
            pk = av.Packet(f"line {t}".encode())
            pk.pts = pk.dts = t * 500
            pk.duration, pk.time_base, pk.stream = 400, Fraction(1, 1000), sub
            out.mux(pk)
        for pk in inp.demux():
            if pk.size:
                pk.stream = m[pk.stream.index]
                out.mux(pk)
    info = probe_video(str(src))
    res = transcode_video(str(src), str(tmp_path / "o.mkv"), info, _identity)
    assert [s.type for s in res.streams_out] == ["video", "audio", "subtitle", "attachment"]
    assert res.notes == ["stream 4 video mjpeg dropped: only the main video stream is anonymized"]
    with av.open(str(tmp_path / "o.mkv")) as c:
        assert [bytes(p) for p in c.demux(c.streams.subtitles[0]) if p.size] == [b"line 0", b"line 1", b"line 2"]
    res = transcode_video(str(src), str(tmp_path / "o.mp4"), info, _identity)
    assert [s.type for s in res.streams_out] == ["video", "audio"] and len(res.notes) == 3
    assert any("subrip dropped: mp4 cannot hold subrip" in x for x in res.notes)


@pytest.mark.parametrize(
    "name,kw",
    [
        ("a.mkv", {}),
        ("a.webm", {"codec": "libvpx-vp9", "audio": "libopus"}),
        ("a.avi", {"audio": "mp3"}),
        ("fast.mp4", {"options": {"movflags": "faststart"}}),  # index first: header reads, samples are missing
    ],
)
@pytest.mark.parametrize("keep", [0.5, 0.9])
def test_truncated_containers_refused(tmp_path, name, kw, keep):
    data = open(_clip(tmp_path / name, n=100, size=(160, 120), **kw), "rb").read()
    p = tmp_path / f"cut_{name}"
    p.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(MediaError, match="truncated|corrupt") as e:
        probe_video(str(p))
    assert e.value.path == str(p)


def test_stream_cut_mid_gop_starts_at_its_first_keyframe(tmp_path):
    """A TS cut out of a longer recording (DVR export) starts mid-GOP: the pictures before its first
    keyframe cannot be decoded, so they are not frames; the rest probes, seeks and transcodes."""
    whole = tmp_path / "whole.ts"
    with av.open(str(whole), "w") as out:
        vs = out.add_stream("libx264", rate=25, options={"g": "25", "bf": "2"})
        vs.width, vs.height, vs.pix_fmt = 64, 48, "yuv420p"
        for i in range(100):
            img = np.full((48, 64, 3), (i * 7) % 256, np.uint8)
            vf = av.VideoFrame.from_ndarray(img, format="rgb24")
            vf.pts = i
            out.mux(vs.encode(vf))
        out.mux(vs.encode(None))
    data = whole.read_bytes()
    cut = tmp_path / "cut.ts"
    cut.write_bytes(data[(len(data) // 188 // 6) * 188 :])  # whole 188-byte TS packets, about 1/6 in
    with av.open(str(cut)) as c:
        decodable = [f.pts for f in c.decode(video=0)]
    with av.open(str(cut)) as c:
        packets = sum(1 for p in c.demux(video=0) if p.size)
    info = probe_video(str(cut))
    assert packets > info.n_frames == len(decodable) > 50  # the leading packets are left out
    assert list(info.frame_pts) == decodable
    assert [i for i, _ in iter_frames(str(cut), info)] == list(range(info.n_frames))
    assert [i for i, _ in iter_frames(str(cut), info, 40, 60)] == list(range(40, 60))
    res = transcode_video(str(cut), str(tmp_path / "o.ts"), info, _identity)
    assert res.frames_out == info.n_frames == probe_video(str(tmp_path / "o.ts")).n_frames


@pytest.mark.parametrize("order", ["tff", "bff"])
def test_interlaced_video_stays_interlaced(tmp_path, order):
    """Broadcast and DVR video coded as fields comes out coded as fields, in the same order (flagged
    progressive, a player would not deinterlace it and every moving edge would show combs)."""
    src = tmp_path / f"{order}.ts"
    with av.open(str(src), "w") as out:
        vs = out.add_stream("libx264", rate=25, options={"flags": "+ildct+ilme", "x264-params": f"{order}=1"})
        vs.width, vs.height, vs.pix_fmt = 64, 48, "yuv420p"
        for i in range(10):
            vf = av.VideoFrame.from_ndarray(np.full((48, 64, 3), i * 20, np.uint8), format="rgb24")
            vf.pts = i
            out.mux(vs.encode(vf))
        out.mux(vs.encode(None))
    info = probe_video(str(src))
    assert info.interlaced == order
    for dst in ("o.ts", "o.mp4"):
        transcode_video(str(src), str(tmp_path / dst), info, _identity)
        assert probe_video(str(tmp_path / dst)).interlaced == order
    assert probe_video(_clip(tmp_path / "p.mp4")).interlaced == ""  # progressive stays progressive


def test_detection_looks_at_the_first_field_of_interlaced_video():
    """Faces that moved between the two fields of a woven frame show combs a detector misses; the
    first field, line-doubled, shows them whole. Fields are rows of the coded frame (a rotated
    video's are columns of the upright one)."""
    import cv2
    from skimage import data

    from faceveil.models.detectors import DetectorSettings, create_detector
    from faceveil.storage.media import VideoInfo, first_field
    from faceveil.storage.orientation import Orientation

    face = data.astronaut()[20:215, 150:300]
    top, bottom = (np.ascontiguousarray(cv2.resize(data.coffee(), (1280, 720))) for _ in range(2))
    for k in range(32):
        size = 48 + 8 * (k % 3)
        fw = int(size * face.shape[1] / face.shape[0])
        x, y = 40 + (k % 8) * 150, 40 + (k // 8) * 170
        f = cv2.resize(face, (fw, size), interpolation=cv2.INTER_AREA)
        top[y : y + size, x : x + fw] = f
        bottom[y : y + size, x + 14 : x + 14 + fw] = f  # 14 px further in the second field
    woven = top.copy()
    woven[1::2] = bottom[1::2]

    def info(order, o=Orientation()):
        return VideoInfo("x", 1280, 720, 25.0, Fraction(1, 25), np.arange(2), 0.08, 0, [], o, interlaced=order)

    det = create_detector("centerface", DetectorSettings(threshold=0.2, precision="fp32"))
    assert len(det.detect(first_field(woven, info("tff")))) >= 30
    assert len(det.detect(woven)) <= 16  # the combs hide at least half of them
    assert first_field(woven, info("")) is woven  # progressive: untouched
    gap = lambda a, b: np.abs(a.astype(np.int16) - b).mean()  # noqa: E731
    assert gap(first_field(woven, info("bff")), bottom) < gap(
        first_field(woven, info("bff")), top
    )  # bottom field first
    assert gap(first_field(woven, info("tff")), top) < gap(first_field(woven, info("tff")), bottom)
    turned = Orientation(transpose=True)
    upright = np.ascontiguousarray(woven.swapaxes(0, 1))  # shown turned: the fields are its columns
    assert np.array_equal(first_field(upright, info("tff", turned)), first_field(woven, info("tff")).swapaxes(0, 1))


def test_corrupt_data_in_the_middle_fails_closed(tmp_path):
    data = bytearray(open(_clip(tmp_path / "a.mp4", n=100, size=(160, 120), audio=None), "rb").read())
    k = len(data) // 3
    data[k : k + 2000] = np.random.default_rng(5).integers(0, 256, 2000, dtype=np.uint8).tobytes()
    p = tmp_path / "bad.mp4"
    p.write_bytes(bytes(data))
    with pytest.raises(MediaError, match="bad.mp4"):
        transcode_video(str(p), str(tmp_path / "o.mp4"), probe_video(str(p)), _identity)
    assert not (tmp_path / "o.mp4").exists()


def test_no_video_stream_and_too_large(tmp_path):
    with av.open(str(tmp_path / "audio.mp4"), "w") as out:
        a = out.add_stream("aac", rate=48000)
        a.layout = "mono"
        for t in range(0, 48000, 1024):
            af = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            af.sample_rate, af.pts = 48000, t
            out.mux(a.encode(af))
        out.mux(a.encode(None))
    with pytest.raises(MediaError, match="no video stream"):
        probe_video(str(tmp_path / "audio.mp4"))
    with pytest.raises(MediaError, match="over the limit"):
        probe_video(_clip(tmp_path / "a.mp4", audio=None), max_pixels=1000)
    with pytest.raises(MediaError, match="file not found"):
        probe_video(str(tmp_path / "missing.mp4"))


def test_media_error_message_and_pickle():
    import pickle

    e = pickle.loads(pickle.dumps(MediaError("cams/a.mp4", "empty file")))
    assert (str(e), e.path, e.reason) == ("cams/a.mp4: empty file", "cams/a.mp4", "empty file")


# ---------------------------------------------------------------- images


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_exif_orientation_round_trips(tmp_path, orientation):
    from PIL import ImageOps

    stored = np.random.default_rng(orientation).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(stored).save(tmp_path / "in.png", exif=exif)
    rgb, meta = read_image(str(tmp_path / "in.png"))
    with Image.open(tmp_path / "in.png") as im:
        assert np.array_equal(rgb, np.asarray(ImageOps.exif_transpose(im).convert("RGB")))
    write_image(str(tmp_path / "out.png"), rgb, meta)
    with Image.open(tmp_path / "out.png") as im:
        assert np.array_equal(np.asarray(im), stored)  # stored orientation, pixel for pixel
        assert dict(im.getexif()) == ({} if orientation == 1 else {0x0112: orientation})


def test_grayscale_alpha_webp_and_unsupported_images(tmp_path):
    rgb = np.random.default_rng(4).integers(0, 256, (16, 24, 3), dtype=np.uint8)
    Image.fromarray(rgb[..., 0]).save(tmp_path / "g.png")
    got, meta = read_image(str(tmp_path / "g.png"))
    assert meta.mode == "L" and got.shape == (16, 24, 3) and got.flags.writeable
    write_image(str(tmp_path / "g2.png"), got, meta)
    with Image.open(tmp_path / "g2.png") as im:
        assert im.mode == "L" and np.array_equal(np.asarray(im), rgb[..., 0])
    Image.fromarray(np.dstack([rgb, rgb[..., :1]]), "RGBA").save(tmp_path / "a.png")
    assert np.array_equal(read_image(str(tmp_path / "a.png"))[0], rgb)
    Image.fromarray(rgb).save(tmp_path / "w.webp", lossless=True)
    got, meta = read_image(str(tmp_path / "w.webp"))
    write_image(str(tmp_path / "w2.webp"), got, meta, lossless=True)
    assert np.array_equal(read_image(str(tmp_path / "w2.webp"))[0], rgb)
    Image.fromarray(rgb).save(tmp_path / "x.gif")
    with pytest.raises(MediaError, match="unsupported image format"):
        read_image(str(tmp_path / "x.gif"))
    Image.fromarray(rgb).save(tmp_path / "anim.webp", save_all=True, append_images=[Image.fromarray(255 - rgb)])
    with pytest.raises(MediaError, match="animated"):
        read_image(str(tmp_path / "anim.webp"))


def test_truncated_and_renamed_images(tmp_path):
    Image.fromarray(np.random.default_rng(6).integers(0, 256, (200, 300, 3), dtype=np.uint8)).save(tmp_path / "b.jpg")
    data = (tmp_path / "b.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    with pytest.raises(MediaError, match="cut.jpg: corrupt or truncated"):
        read_image(str(tmp_path / "cut.jpg"))
    (tmp_path / "notes.png").write_text("just some text\n" * 20)
    with pytest.raises(MediaError, match="notes.png"):
        read_image(str(tmp_path / "notes.png"))


def test_select_yields_only_chosen_frames(sample):
    p = str(sample / "cameras/lobby/clip_001.mp4")
    info = probe_video(p)
    full = dict(iter_frames(p, info))
    some = list(iter_frames(p, info, 5, 30, select=lambda i: i % 4 == 0))
    assert [i for i, _ in some] == [8, 12, 16, 20, 24, 28]
    assert all(np.array_equal(rgb, full[i]) for i, rgb in some)


def test_only_edits_listed_frames_and_keeps_the_rest(sample, tmp_path):
    src = str(sample / "cameras/lobby/clip_001.mp4")
    info = probe_video(src)
    edited = []

    def edit(i, rgb):
        edited.append(i)
        rgb[:] = 255
        return rgb

    res = transcode_video(src, str(tmp_path / "o.mp4"), info, edit, only={3, 7})
    assert edited == [3, 7] and res.frames_out == info.n_frames
    out = dict(iter_frames(str(tmp_path / "o.mp4"), probe_video(str(tmp_path / "o.mp4"))))
    assert out[3].mean() > 250 and out[7].mean() > 250 and out[4].mean() < 200
