"""Media I/O on PyAV: probe, stream frames, transcode with every other stream passed through,
and images that keep their format and orientation. Local files only; no whole video in memory."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Callable, Container, Iterator

import av
import numpy as np

VIDEO_EXTS = frozenset({".mp4", ".mkv", ".avi", ".mov", ".webm"})
IMAGE_EXTS = frozenset({".jpg", ".jpeg", ".png", ".webp"})


class MediaError(Exception):
    """Bad input media; the message names the file and the reason."""

    def __init__(self, path: str, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path, self.reason = str(path), reason

    def __reduce__(self):  # travels between Dask workers
        return MediaError, (self.path, self.reason)


@dataclass(frozen=True)
class StreamInfo:
    index: int
    type: str
    codec: str
    duration_s: float | None


@dataclass
class VideoInfo:
    path: str
    width: int
    height: int
    fps: float
    time_base: Fraction
    frame_pts: np.ndarray
    duration_s: float
    rotation: int
    streams: list[StreamInfo] = field(default_factory=list)

    @property
    def n_frames(self) -> int:
        return len(self.frame_pts)

    @property
    def has_audio(self) -> bool:
        return any(s.type == "audio" for s in self.streams)

    def frame_time(self, i: int) -> float:
        return float((int(self.frame_pts[i]) - int(self.frame_pts[0])) * self.time_base)


def _open(path: str):
    if not os.path.exists(path):
        raise MediaError(path, "file not found")
    if os.path.getsize(path) == 0:
        raise MediaError(path, "empty file")
    try:
        return av.open(path, metadata_errors="ignore")
    except av.error.FFmpegError as e:
        raise MediaError(path, f"not a readable media file ({e.strerror or type(e).__name__})") from None


def _stream_duration(s) -> float | None:
    if s.duration is not None and s.time_base is not None:
        return float(s.duration * s.time_base)
    return None


def probe_video(path: str, *, max_pixels: int = 8192 * 8192) -> VideoInfo:
    """Reads the stream layout and the pts of every video frame (demux only, no decoding)."""
    with _open(path) as c:
        if not c.streams.video:
            raise MediaError(path, "no video stream")
        vs = c.streams.video[0]
        w, h = vs.codec_context.width, vs.codec_context.height
        if not w or not h:
            raise MediaError(path, "video stream has no frame size (corrupt header)")
        if w * h > max_pixels:
            raise MediaError(path, f"resolution {w}x{h} over the limit of {max_pixels} pixels")
        tb = vs.time_base or Fraction(1, 90000)
        pts, durations = [], []
        audio_end: dict[int, float] = {}
        try:
            for pkt in c.demux():
                if pkt.size == 0:
                    continue
                if pkt.is_corrupt:
                    raise MediaError(path, f"corrupt packet in stream {pkt.stream.index}")
                if pkt.stream.index == vs.index:
                    pts.append(pkt.pts if pkt.pts is not None else pkt.dts)
                    durations.append(pkt.duration or 0)
                elif pkt.pts is not None and pkt.stream.time_base:
                    end = float((pkt.pts + (pkt.duration or 0)) * pkt.stream.time_base)
                    audio_end[pkt.stream.index] = max(audio_end.get(pkt.stream.index, 0.0), end)
        except av.error.FFmpegError as e:
            raise MediaError(path, f"unreadable data after {len(pts)} video packets ({e.strerror or type(e).__name__})") from None
        if not pts:
            raise MediaError(path, "no video frames")
        if any(p is None for p in pts):
            pts = list(range(len(pts)))  # no timestamps at all: number the frames
        frame_pts = np.sort(np.asarray(pts, np.int64))
        rate = vs.average_rate or vs.guessed_rate or vs.base_rate
        fps = float(rate) if rate else (len(pts) - 1) / max(float((frame_pts[-1] - frame_pts[0]) * tb), 1e-9)
        step = float(np.median(np.diff(frame_pts)) * tb) if len(frame_pts) > 1 else (1 / fps if fps else 0.0)
        last = float(durations[int(np.argmax(pts))] * tb) if durations and max(durations) else step
        duration = float((frame_pts[-1] - frame_pts[0]) * tb) + last
        streams = []
        for s in c.streams:
            d = _stream_duration(s)
            if s.index in audio_end and s.start_time is not None:
                d = audio_end[s.index] - float(s.start_time * s.time_base)
            streams.append(StreamInfo(s.index, s.type, s.codec_context.name if s.codec_context else "unknown",
                                      duration if s.index == vs.index else d))
        rotation = 0
        try:
            c.seek(0)
            for frame in c.decode(vs):
                rotation = int(round(frame.rotation or 0)) % 360
                break
        except av.error.FFmpegError as e:
            raise MediaError(path, f"first frame does not decode ({e.strerror or type(e).__name__})") from None
        return VideoInfo(path, w, h, fps, tb, frame_pts, duration, rotation, streams)


def _index(info: VideoInfo, frame, fallback: int) -> int:
    if frame.pts is None:
        return fallback
    i = int(np.searchsorted(info.frame_pts, frame.pts))
    return i if i < info.n_frames and info.frame_pts[i] == frame.pts else fallback


def _decode_frames(c, vs, info: VideoInfo, start: int = 0) -> Iterator[tuple[int, "av.VideoFrame"]]:
    """(index, frame) in presentation order from `start` on (seeking first)."""
    if start > 0:
        c.seek(int(info.frame_pts[start]), stream=vs, backward=True, any_frame=False)
    expected = start
    for frame in c.decode(vs):
        i = _index(info, frame, expected)
        if i < expected:
            continue  # before the chunk (decoded from the previous keyframe)
        yield i, frame
        expected = i + 1


def iter_frames(path: str, info: VideoInfo, start: int = 0, stop: int | None = None) -> Iterator[tuple[int, np.ndarray]]:
    """RGB frames (coded orientation) with their index, for start <= index < stop."""
    stop = info.n_frames if stop is None else min(stop, info.n_frames)
    if start >= stop:
        return
    with _open(path) as c:
        vs = c.streams.video[0]
        vs.thread_type = "AUTO"
        n = start
        try:
            for i, frame in _decode_frames(c, vs, info, start):
                if i >= stop:
                    break
                yield i, frame.to_ndarray(format="rgb24")
                n = i + 1
        except av.error.FFmpegError as e:
            raise MediaError(path, f"decoding failed at frame {n} ({e.strerror or type(e).__name__})") from None
        if n < stop:
            raise MediaError(path, f"video ends at frame {n}, expected {stop} (truncated or corrupt)")


@dataclass
class TranscodeResult:
    frames_in: int
    frames_out: int
    duration_in_s: float
    duration_out_s: float
    streams_out: list[StreamInfo]
    notes: list[str]


_AUDIO_FALLBACK = {".webm": "libopus", ".mp4": "aac", ".mov": "aac", ".mkv": "aac", ".avi": "aac"}


def _video_stream(out, ivs, dst: str, lossless: bool, crf: int, preset: str):
    ext = os.path.splitext(dst)[1].lower()
    w, h = ivs.codec_context.width, ivs.codec_context.height
    rate = ivs.average_rate or ivs.guessed_rate or Fraction(25)
    if lossless:
        if ext != ".mkv":
            raise ValueError(f"{dst}: lossless video output must be .mkv (FFV1)")
        ovs = out.add_stream("ffv1", rate=rate)
        ovs.pix_fmt = "gbrp"
    elif ext == ".webm":
        ovs = out.add_stream("libvpx-vp9", rate=rate, options={"deadline": "realtime", "cpu-used": "8", "crf": str(crf + 14), "b": "0"})
        ovs.pix_fmt = "yuv420p"
    else:
        ovs = out.add_stream("libx264", rate=rate, options={"crf": str(crf), "preset": preset})
        ovs.pix_fmt = "yuv420p" if w % 2 == 0 and h % 2 == 0 else "yuv444p"
    ovs.width, ovs.height = w, h
    ovs.time_base = ivs.time_base
    ovs.codec_context.time_base = ivs.time_base
    return ovs


def transcode_video(src: str, dst: str, info: VideoInfo, edit: Callable[[int, np.ndarray], np.ndarray], *,
                    only: Container[int] | None = None, lossless: bool = False, crf: int = 18,
                    preset: str = "veryfast") -> TranscodeResult:
    """One pass over `src`: video frames decoded, edited as RGB (`only` those indices when given;
    the others are re-encoded as decoded) and encoded with their original timestamps; every other
    stream is copied packet for packet, or re-encoded (and noted) when the container can't hold it."""
    notes: list[str] = []
    ext = os.path.splitext(dst)[1].lower()
    with _open(src) as inp:
        ivs = inp.streams.video[0]
        ivs.thread_type = "AUTO"
        out = av.open(dst, "w")
        try:
            ovs = _video_stream(out, ivs, dst, lossless, crf, preset)
            if info.rotation:
                ovs.set_display_rotation(info.rotation)
            copies, reencode = {}, {}
            for s in inp.streams:
                if s.index == ivs.index or s.type not in ("audio", "subtitle", "data"):
                    if s.type == "video" and s.index != ivs.index:
                        notes.append(f"stream {s.index} (extra video {s.codec_context.name}) dropped")
                    continue
                name = s.codec_context.name if s.codec_context else None
                if name and name in out.supported_codecs:
                    copies[s.index] = out.add_stream_from_template(s)
                elif s.type == "audio" and ext in _AUDIO_FALLBACK:
                    codec = _AUDIO_FALLBACK[ext]
                    o = out.add_stream(codec, rate=s.codec_context.sample_rate if codec != "libopus" else 48000)
                    reencode[s.index] = (o, av.AudioResampler(format=o.codec_context.format.name,
                                                              layout=o.codec_context.layout.name, rate=o.codec_context.sample_rate))
                    notes.append(f"stream {s.index} audio {name} re-encoded to {codec}: {ext} cannot hold {name}")
                else:
                    notes.append(f"stream {s.index} ({s.type} {name}) dropped: {ext} cannot hold it")
            n = 0
            try:
                for pkt in inp.demux():
                    idx = pkt.stream.index
                    if idx == ivs.index:
                        for frame in pkt.decode():
                            i = _index(info, frame, n)
                            if lossless or only is None or i in only:
                                rgb = edit(i, frame.to_ndarray(format="rgb24"))
                                new = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
                            else:
                                new = frame
                            new.pts, new.time_base = frame.pts, frame.time_base
                            out.mux(ovs.encode(new.reformat(format=ovs.pix_fmt) if new.format.name != ovs.pix_fmt else new))
                            n += 1
                    elif idx in copies and pkt.size:
                        pkt.stream = copies[idx]
                        out.mux(pkt)
                    elif idx in reencode:
                        o, resampler = reencode[idx]
                        for af in pkt.decode():
                            for rf in resampler.resample(af):
                                rf.pts = None
                                out.mux(o.encode(rf))
                out.mux(ovs.encode(None))
                for o, resampler in reencode.values():
                    for rf in resampler.resample(None):
                        out.mux(o.encode(rf))
                    out.mux(o.encode(None))
            except av.error.FFmpegError as e:
                raise MediaError(src, f"decoding failed at frame {n} ({e.strerror or type(e).__name__})") from None
        finally:
            out.close()
    if n != info.n_frames:
        raise MediaError(src, f"decoded {n} of {info.n_frames} frames (truncated or corrupt)")
    done = probe_video(dst)
    return TranscodeResult(info.n_frames, done.n_frames, info.duration_s, done.duration_s, done.streams, notes)


@dataclass
class ImageMeta:
    format: str
    orientation: int
    mode: str


# EXIF orientation -> PIL transpose that undoes ImageOps.exif_transpose
_UNDO = {2: "FLIP_LEFT_RIGHT", 3: "ROTATE_180", 4: "FLIP_TOP_BOTTOM", 5: "TRANSPOSE",
         6: "ROTATE_90", 7: "TRANSVERSE", 8: "ROTATE_270"}


def read_image(path: str, *, max_pixels: int = 16384 * 16384) -> tuple[np.ndarray, ImageMeta]:
    """RGB pixels in display orientation (EXIF applied) and what is needed to write it back."""
    import warnings

    from PIL import Image, ImageOps, UnidentifiedImageError

    if not os.path.exists(path):
        raise MediaError(path, "file not found")
    if os.path.getsize(path) == 0:
        raise MediaError(path, "empty file")
    Image.MAX_IMAGE_PIXELS = max_pixels
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                meta = ImageMeta(im.format or "PNG", int(im.getexif().get(0x0112, 1) or 1), im.mode)
                if im.width * im.height > max_pixels:
                    raise MediaError(path, f"image {im.width}x{im.height} over the limit of {max_pixels} pixels")
                im.load()
                rgb = np.asarray(ImageOps.exif_transpose(im).convert("RGB")).copy()
    except MediaError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise MediaError(path, f"image over the limit of {max_pixels} pixels") from None
    except UnidentifiedImageError:
        raise MediaError(path, "not a readable image") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise MediaError(path, f"corrupt or truncated image ({e})") from None
    return rgb, meta


def write_image(path: str, rgb: np.ndarray, meta: ImageMeta, *, lossless: bool = False) -> None:
    """Writes in the original format and storage orientation; EXIF keeps only the Orientation tag."""
    from PIL import Image

    im = Image.fromarray(np.ascontiguousarray(rgb))
    if meta.orientation in _UNDO:
        im = im.transpose(getattr(Image.Transpose, _UNDO[meta.orientation]))
    if meta.mode in ("L", "LA"):
        im = im.convert("L")
    exif = Image.Exif()
    if meta.orientation != 1:
        exif[0x0112] = meta.orientation
    kw: dict = {"exif": exif.tobytes()} if meta.orientation != 1 else {}
    fmt = meta.format.upper()
    if fmt == "JPEG":
        kw.update(quality=95, subsampling=0)
    elif fmt == "WEBP":
        kw.update(lossless=True) if lossless else kw.update(quality=95)
    im.save(path, format=fmt, **kw)
