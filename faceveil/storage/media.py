"""Media I/O on local files: probe, decode and re-encode videos with PyAV, read and write images
with Pillow. Frames are handed out upright (display matrix / EXIF orientation applied) and video is
written back in its coded orientation with its display matrix kept. Bad input raises MediaError
naming the file and the reason."""
from __future__ import annotations

import contextlib
import os
import queue
import threading
import warnings
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Callable, Container, Iterator

import av
import numpy as np

from faceveil.storage.orientation import IDENTITY_MATRIX, Orientation

VIDEO_EXTS = frozenset({".mp4", ".mkv", ".avi", ".mov", ".webm"})
IMAGE_EXTS = frozenset({".jpg", ".jpeg", ".png", ".webp"})
_IMAGE_FORMATS = {"JPEG", "PNG", "WEBP"}
_ORIENTATION = 0x0112


class MediaError(Exception):
    """Bad input media. str(e) == f"{path}: {reason}"; attributes .path, .reason."""

    def __init__(self, path: str, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path, self.reason = str(path), reason

    def __reduce__(self):  # picklable across process pools
        return (MediaError, (self.path, self.reason))


@dataclass(frozen=True)
class StreamInfo:
    index: int
    type: str  # "video" / "audio" / "subtitle" / "data" / "attachment"
    codec: str
    duration_s: float | None


@dataclass
class VideoInfo:
    """width/height: the display size (what a viewer sees, what every box refers to); the coded
    frames are `orientation.coded(...)` of the upright ones. rotation: the display matrix's angle
    (counter-clockwise degrees, as PyAV reads it)."""

    path: str
    width: int
    height: int
    fps: float
    time_base: Fraction
    frame_pts: np.ndarray
    duration_s: float
    rotation: int
    streams: list[StreamInfo]
    orientation: Orientation = field(default_factory=Orientation)

    @property
    def coded_size(self) -> tuple[int, int]:
        return self.orientation.coded_size(self.width, self.height)

    @property
    def n_frames(self) -> int:
        return int(len(self.frame_pts))

    @property
    def has_audio(self) -> bool:
        return any(s.type == "audio" for s in self.streams)

    def frame_time(self, i: int) -> float:
        """Seconds of frame i relative to the first frame."""
        return float(int(self.frame_pts[i] - self.frame_pts[0]) * self.time_base)


@dataclass
class TranscodeResult:
    frames_in: int
    frames_out: int
    duration_in_s: float
    duration_out_s: float
    streams_out: list[StreamInfo]
    notes: list[str] = field(default_factory=list)


@dataclass
class ImageMeta:
    format: str  # PIL format name: "JPEG", "PNG", "WEBP"
    orientation: int  # EXIF orientation (1 if none)
    mode: str  # original PIL mode
    icc_profile: bytes | None = None  # kept on write so colours render the same


# ---------------------------------------------------------------- video: probe and decode


def _check_file(path: str) -> None:
    if not os.path.isfile(path):
        raise MediaError(path, "file not found")
    if os.path.getsize(path) == 0:
        raise MediaError(path, "empty file")


def _open(path: str) -> av.container.InputContainer:
    _check_file(path)
    try:
        return av.open(str(path), "r", metadata_errors="ignore")
    except (av.FFmpegError, UnicodeDecodeError, ValueError) as e:
        raise MediaError(path, f"not a readable media file or corrupt header ({e})") from None


def _video_stream(c, path: str):
    """The main video stream: the first one that is not cover art."""
    for s in c.streams.video:
        if not s.disposition & av.stream.Disposition.attached_pic:
            return s
    raise MediaError(path, "no video stream")


def _codec(s) -> str:
    ctx = s.codec_context
    return ctx.codec.canonical_name if ctx is not None else "none"


def _stream_infos(c) -> list[StreamInfo]:
    out = []
    for s in c.streams:
        codec = _codec(s)
        dur = float(s.duration * s.time_base) if s.duration and s.time_base else None
        out.append(StreamInfo(s.index, s.type, codec, dur))
    return out


def probe_video(path: str, *, max_pixels: int = 8192 * 8192) -> VideoInfo:
    """Stream layout, size and every frame's pts from one demux pass (decodes only frame 0)."""
    path = str(path)
    with _open(path) as c:
        vs = _video_stream(c, path)
        w, h = vs.codec_context.width, vs.codec_context.height
        if w <= 0 or h <= 0:
            raise MediaError(path, "video stream has no frame size")
        if w * h > max_pixels:
            raise MediaError(path, f"resolution {w}x{h} over the limit of {max_pixels} pixels")
        pts, dts, durs, n_discard, first, end = [], [], {}, 0, None, None
        try:
            for p in c.demux():
                if p.size and p.pts is not None and p.stream.time_base:  # for the truncation check
                    t_end = float((p.pts + (p.duration or 0)) * p.stream.time_base)
                    end = t_end if end is None else max(end, t_end)
                if p.stream.index != vs.index:
                    continue
                if p.size and p.is_discard:
                    n_discard += 1
                elif p.size:
                    if p.is_corrupt:
                        raise MediaError(path, f"corrupt video packet at pts {p.pts}")
                    t = p.pts if p.pts is not None else p.dts
                    if t is None:
                        raise MediaError(path, "video packet without timestamp")
                    pts.append(t)
                    dts.append(p.dts if p.dts is not None else t)
                    durs[t] = p.duration or 0
                if first is None and (p.size or pts):
                    frames = vs.decode(p)  # decode only until the first frame (rotation)
                    first = frames[0] if frames else None
        except av.FFmpegError as e:
            raise MediaError(path, f"truncated or corrupt data ({e})") from None
        if not pts:
            raise MediaError(path, "no video packets")
        if first is None:
            raise MediaError(path, "no decodable video frame")
        fmt = c.format.name
        if "mov" in fmt and vs.frames and len(pts) + n_discard < vs.frames:  # header counts samples
            raise MediaError(path, f"truncated: header lists {vs.frames} frames, found {len(pts)}")
        if fmt == "avi" and vs.frames and max(dts) - min(dts) + 1 < vs.frames - 1:  # header counts slots
            raise MediaError(path, f"truncated: header lists {vs.frames} frames, data ends at frame {max(dts)}")
        if fmt != "avi" and c.duration and end is not None:  # avi's duration comes from its (cut) index
            t_hdr = (c.duration + (c.start_time or 0)) / av.time_base
            if end < 0.99 * t_hdr - 0.25:
                raise MediaError(path, f"truncated: data ends at {end:.2f} s, header says {t_hdr:.2f} s")
        fp = np.sort(np.asarray(pts, dtype=np.int64))
        if len(fp) > 1 and np.any(np.diff(fp) == 0):
            raise MediaError(path, "duplicate video timestamps")
        tb = vs.time_base
        # the last frame's display time: its packet duration, unless frames are reordered (B-frames:
        # mp4 sample durations then follow decode order) -> the interval before it
        reordered = any(a > b for a, b in zip(pts, pts[1:]))
        last = durs[int(fp[-1])] if not reordered else 0
        last = last or (int(fp[-1] - fp[-2]) if len(fp) > 1 else 0)
        rate = vs.average_rate or vs.guessed_rate
        if not last:
            last = round(1 / (rate * tb)) if rate else 0
        duration = float((int(fp[-1] - fp[0]) + last) * tb)
        fps = float(rate) if rate else (len(fp) / duration if duration else 0.0)
        orientation = Orientation.from_side_data(first)
        dw, dh = orientation.display_size(w, h)
        return VideoInfo(path, dw, dh, fps, tb, fp, duration, round(first.rotation) % 360, _stream_infos(c), orientation)


def _frame_index(info: VideoInfo, frame, path: str) -> int:
    if frame.pts is None:
        raise MediaError(path, "decoded frame without timestamp")
    i = int(np.searchsorted(info.frame_pts, frame.pts))
    if i >= info.n_frames or info.frame_pts[i] != frame.pts:
        raise MediaError(path, f"decoded frame pts {frame.pts} not in the demuxed index")
    return i


def _rgb(frame) -> np.ndarray:
    a = frame.to_ndarray(format="rgb24")
    return a if a.flags.c_contiguous and a.flags.writeable else np.array(a, order="C")


class _SeekMiss(Exception):
    pass


def _sequential(c) -> bool:
    """AVI stores no presentation timestamps (B-frames come out with guessed pts): count frames."""
    return c.format.name == "avi"


def _decode_range(path: str, info: VideoInfo, start: int, stop: int, seek: bool, select=None):
    for i, _, rgb in _decode_frames(path, info, start, stop, seek, select, skip=True):
        yield i, rgb


def _decode_frames(path: str, info: VideoInfo, start: int, stop: int, seek: bool, convert=None, skip: bool = False):
    """(index, decoded frame, upright RGB or None) for start <= index < stop; RGB only where
    `convert(index)` (every frame when None); with `skip`, frames without RGB are left out."""
    nxt, cur = start, None
    with _open(path) as c:
        vs = _video_stream(c, path)
        vs.thread_type = "AUTO"
        seq = _sequential(c)
        try:
            if seek:
                c.seek(int(info.frame_pts[start]), stream=vs, backward=True, any_frame=False)
            for frame in c.decode(vs):
                i = cur = cur + 1 if seq and cur is not None else _frame_index(info, frame, path)
                if i < nxt:
                    continue
                if i > nxt:
                    if seek and nxt == start:
                        raise _SeekMiss
                    raise MediaError(path, f"frame {nxt} missing in decode (got {i})")
                if convert is None or convert(i):
                    yield i, frame, info.orientation.upright(_rgb(frame))
                elif not skip:
                    yield i, frame, None
                nxt += 1
                if nxt == stop:
                    return
        except av.FFmpegError as e:
            raise MediaError(path, f"decode error after frame {nxt - 1} ({e})") from None
    raise MediaError(path, f"truncated: decoded frames {start}..{nxt - 1}, expected up to {stop - 1}")


def iter_frames(path: str, info: VideoInfo, start: int = 0, stop: int | None = None,
                select: Callable[[int], bool] | None = None) -> Iterator[tuple[int, np.ndarray]]:
    """Yield (index, RGB HxWx3 uint8) for start <= index < stop, upright, seeking to start.
    With `select`, only the frames it accepts are converted and yielded (all are still decoded)."""
    path = str(path)
    stop = info.n_frames if stop is None else min(stop, info.n_frames)
    if not 0 <= start <= stop:
        raise ValueError(f"bad frame range [{start}, {stop}) for {info.n_frames} frames")
    if start == stop:
        return
    try:
        yield from _decode_range(path, info, start, stop, seek=start > 0, select=select)
    except _SeekMiss:  # seek landed past frame `start` (open GOP, bad index): decode from 0
        yield from _decode_range(path, info, start, stop, seek=False, select=select)


# ---------------------------------------------------------------- video: transcode


def _first_frame(path: str):
    with _open(path) as c:
        try:
            for f in c.decode(_video_stream(c, path)):
                return f
        except av.FFmpegError as e:
            raise MediaError(path, f"decode error in first frame ({e})") from None
    raise MediaError(path, "no decodable video frame")


def _add_video(out, ext: str, info: VideoInfo, first, lossless: bool, crf: int, preset: str):
    rate = Fraction(info.fps).limit_denominator(1001000) if info.fps > 0 else Fraction(25)
    if lossless:
        s = out.add_stream("ffv1", rate=rate, options={"level": "3", "slicecrc": "1"})
        s.pix_fmt = "bgr0"
    elif ext == ".webm":
        s = out.add_stream("libvpx-vp9", rate=rate, options={
            "deadline": "realtime", "cpu-used": "8", "crf": str(crf), "b": "0", "row-mt": "1"})
        s.pix_fmt = "yuv420p"
    else:
        s = out.add_stream("libx264", rate=rate, options={"crf": str(crf), "preset": preset})
        s.pix_fmt = "yuv420p" if info.width % 2 == 0 and info.height % 2 == 0 else "yuv444p"  # either orientation
    s.width, s.height = info.coded_size
    tb = info.time_base if ext != ".avi" else 1 / rate  # avi holds one timestamp per frame slot
    s.time_base = tb
    s.codec_context.time_base = tb
    if not lossless:  # same YUV matrix/range tags as the source, so colours look the same
        for k in ("colorspace", "color_range", "color_primaries", "color_trc"):
            with contextlib.suppress(Exception):
                setattr(s.codec_context, k, getattr(first, k))
    sd = first.side_data.get("DISPLAYMATRIX") if first.side_data else None
    if sd is not None:
        m = [int(v) for v in np.frombuffer(bytes(sd), dtype="=i4")[:9]]
        if tuple(m) != IDENTITY_MATRIX:
            s.set_display_matrix(m)
    return s


def _plan_streams(inp, out, vin, ext: str, notes: list[str]) -> dict:
    """Input stream index -> ("copy" | "audio", output stream) for every stream but the main video."""
    plan, supported = {}, out.supported_codecs
    for s in inp.streams:
        ctx, codec = s.codec_context, _codec(s)
        what = f"stream {s.index} {s.type} {codec}"
        if s is vin:
            continue
        if s.type == "video":  # cover art, second angle: not anonymized, so never copied
            notes.append(f"{what} dropped: only the main video stream is anonymized")
        elif s.type == "attachment":
            mime = getattr(s, "mimetype", None) or ""
            if ext == ".mkv" and not mime.startswith("image/"):  # fonts for subtitles
                out.add_attachment(s.metadata.get("filename", f"attachment{s.index}"), mime, s.data)
            else:
                notes.append(f"{what} dropped: attachment ({mime or 'unknown type'})")
        elif codec in supported:
            try:
                plan[s.index] = ("copy", out.add_stream_from_template(s))
            except ValueError as e:
                notes.append(f"{what} dropped: {e}")
        elif s.type == "audio" and ctx is not None and ctx.codec.is_decoder:
            name = "libopus" if ext == ".webm" else "aac"
            o = out.add_stream(name, rate=48000 if ext == ".webm" else (ctx.sample_rate or 48000))
            o.layout = ctx.layout if ctx.layout.nb_channels <= 2 or ext != ".webm" else "stereo"
            plan[s.index] = ("audio", o)
            notes.append(f"{what} re-encoded to {name}: {ext[1:]} cannot hold {codec}")
        else:
            notes.append(f"{what} dropped: {ext[1:]} cannot hold {codec}")
        if s.index in plan and s.language:
            with contextlib.suppress(Exception):
                plan[s.index][1].language = s.language
    return plan


def _demuxed(inp, vin, plan: dict, info: VideoInfo, src: str, seq: bool, convert: Callable[[int], bool]):
    """The input in demux order: ("video", index, frame, rgb or None), ("copy", stream, packet, None)
    and ("audio", stream, decoded audio frame, None) for the streams `plan` keeps."""
    n = 0
    for pkt in inp.demux():
        k = pkt.stream.index
        try:
            if k == vin.index:
                for f in vin.decode(pkt):
                    i = n if seq else _frame_index(info, f, src)
                    n += 1
                    yield "video", i, f, (info.orientation.upright(_rgb(f)) if convert(i) else None)
            elif k in plan:
                how, _ = plan[k]
                if how == "copy" and pkt.size:
                    yield "copy", k, pkt, None
                elif how == "audio":
                    for af in pkt.decode():
                        yield "audio", k, af, None
        except av.FFmpegError as e:
            raise MediaError(src, f"decode error in stream {k} after video frame {n} ({e})") from None


class _Raised:
    def __init__(self, error: BaseException):
        self.error = error


def _read_ahead(items: Iterator, depth: int = 8) -> Iterator:
    """Runs the iterator `items` in a background thread, at most `depth` items ahead: decoding
    overlaps editing and encoding (PyAV releases the GIL), and memory stays bounded."""
    q: queue.Queue = queue.Queue(depth)
    stop, end = threading.Event(), object()

    def put(x) -> bool:
        while not stop.is_set():
            try:
                q.put(x, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def run():
        try:
            for x in items:
                if not put(x):
                    break
            else:
                put(end)
        except BaseException as e:  # handed to the consumer, raised there
            put(_Raised(e))
        finally:
            close = getattr(items, "close", None)
            if close:
                close()

    worker = threading.Thread(target=run, name="faceveil-decode", daemon=True)
    worker.start()
    try:
        while True:
            x = q.get()
            if x is end:
                return
            if isinstance(x, _Raised):
                raise x.error
            yield x
    finally:
        stop.set()
        worker.join()


class _Encoder:
    """The video stream of an output being written: frames in (edited RGB, upright, or decoded frames
    as they are), encoded in the coded orientation with the original timestamps, muxed with their
    durations (encoders leave them at 0; the last one sets the file's duration); `tap(packets,
    codec_context)` sees each batch of packets before it is muxed."""

    def __init__(self, out, ext: str, info: VideoInfo, first, lossless: bool, crf: int, preset: str, tap, notes: list):
        self.out, self.info, self.tap, self.notes, self.ext = out, info, tap, notes, ext
        self.vout = _add_video(out, ext, info, first, lossless, crf, preset)
        self.conv = {"format": "bgr0"} if lossless else {  # RGB -> YUV with the source's matrix and range
            "dst_colorspace": int(first.colorspace) if int(first.colorspace) in (1, 4, 5, 7, 9) else None,
            "dst_color_range": int(first.color_range) or None, "format": self.vout.pix_fmt}
        self.tb = self.vout.codec_context.time_base
        self.shape = (info.height, info.width, 3)
        self.end = info.frame_pts[0] + round(Fraction(info.duration_s) / info.time_base)
        self.last, self.pending = -1, {}

    def put(self, i: int, rgb: np.ndarray | None, frame) -> None:
        """Frame i: the edited upright `rgb`, or (rgb None) the decoded `frame` as it is."""
        info = self.info
        if rgb is not None:
            if not (isinstance(rgb, np.ndarray) and rgb.shape == self.shape and rgb.dtype == np.uint8):
                raise ValueError(f"edit must return uint8 {self.shape}, got "
                                 f"{getattr(rgb, 'dtype', type(rgb))} {getattr(rgb, 'shape', '')}")
            coded = info.orientation.coded(rgb)
            of = av.VideoFrame.from_ndarray(np.ascontiguousarray(coded), format="rgb24").reformat(**self.conv)
        else:
            of = frame if frame.format.name == self.conv["format"] else frame.reformat(format=self.conv["format"])
        t = info.frame_pts[i] * info.time_base
        of.pts, of.time_base = max(round(t / self.tb), self.last + 1), self.tb
        if of.pts * self.tb != t and not any("rounded" in x for x in self.notes):
            self.notes.append(f"{self.ext[1:]} holds constant-rate timestamps: rounded to {self.tb} s")
        t_next = (info.frame_pts[i + 1] if i + 1 < info.n_frames else self.end) * info.time_base
        self.pending[of.pts] = max(round(t_next / self.tb) - of.pts, 1)
        self.last = of.pts
        self._mux(self.vout.encode(of))

    def flush(self) -> None:
        self._mux(self.vout.encode(None))

    def _mux(self, packets) -> None:
        for q in packets:
            q.duration = self.pending.pop(q.pts, 0) or q.duration
        if self.tap is not None and packets:
            self.tap(packets, self.vout.codec_context)
        self.out.mux(packets)


def _check_output(dst: str, ext: str, lossless: bool) -> None:
    if ext not in VIDEO_EXTS:
        raise ValueError(f"{dst}: unsupported output extension {ext!r}")
    if lossless and ext != ".mkv":
        raise ValueError(f"{dst}: lossless (FFV1) output needs a .mkv destination")


@contextlib.contextmanager
def _no_partial(dst: str) -> Iterator[None]:
    """A file written in the block is removed when the block fails: no half-written output stays."""
    try:
        yield
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(dst)
        raise


def _flush_audio(plan: dict, out) -> None:
    """The last packets of the audio streams re-encoded for the output container."""
    for how, o in plan.values():
        if how == "audio":
            out.mux(o.encode(None))


def transcode_video(src: str, dst: str, info: VideoInfo, edit: Callable[[int, np.ndarray], np.ndarray], *,
                    only: Container[int] | None = None, lossless: bool = False, crf: int = 18,
                    preset: str = "veryfast", tap: Callable[[list, object], None] | None = None) -> TranscodeResult:
    """One pass: decode video, edit(index, upright rgb) -> upright rgb, re-encode in the coded orientation
    with the original pts and display matrix; copy other streams. With `only`, frames not in it skip the
    RGB round trip and are re-encoded as decoded. `tap(packets, codec_context)` sees each batch of
    encoded video packets before they are muxed."""
    src, dst = str(src), str(dst)
    ext = Path(dst).suffix.lower()
    _check_output(dst, ext, lossless)
    first = _first_frame(src)
    notes: list[str] = []
    n = 0
    with _no_partial(dst), _open(src) as inp, av.open(dst, "w") as out:
        vin = _video_stream(inp, src)
        vin.thread_type = "AUTO"
        seq = _sequential(inp)
        enc = _Encoder(out, ext, info, first, lossless, crf, preset, tap, notes)
        if info.rotation and ext == ".avi":
            notes.append(f"avi cannot hold the display rotation: {info.rotation} degrees lost")
        plan = _plan_streams(inp, out, vin, ext, notes)
        convert = (lambda i: True) if only is None or lossless else (lambda i: i in only)
        for what, k, item, rgb in _read_ahead(_demuxed(inp, vin, plan, info, src, seq, convert)):
            try:
                if what == "video":
                    if k != n:
                        raise MediaError(src, f"frame {n} missing in decode (got {k})")
                    enc.put(k, edit(k, rgb) if rgb is not None else None, item)
                    n += 1
                elif what == "copy":
                    item.stream = plan[k][1]
                    out.mux(item)
                else:
                    out.mux(plan[k][1].encode(item))
            except av.FFmpegError as e:
                raise MediaError(src, f"encode/mux error in stream {k} after video frame {n} ({e})") from None
        if n != info.n_frames:
            raise MediaError(src, f"truncated or corrupt: decoded {n} of {info.n_frames} frames")
        enc.flush()
        _flush_audio(plan, out)
    oi = probe_video(dst, max_pixels=max(info.width * info.height, 1))
    if oi.n_frames != n:
        raise RuntimeError(f"{dst}: wrote {oi.n_frames} frames, expected {n}")
    return TranscodeResult(n, oi.n_frames, info.duration_s, oi.duration_s, oi.streams, notes)


class Redecoder:
    """Decodes copies of an encoder's packets again: the frames a player of the output will show, in
    display order (`copy_packets` in the encoding thread, `decode` anywhere, `decode(None)` to flush,
    `rgb(frame)` upright as the player shows it)."""

    def __init__(self, codec_name: str, extradata: bytes | None, width: int, height: int,
                 orientation: Orientation = Orientation()):
        self.orientation = orientation
        self.ctx = av.CodecContext.create(codec_name, "r")
        self.ctx.width, self.ctx.height = width, height  # FFV1 will not open without them
        if extradata:
            self.ctx.extradata = extradata

    @staticmethod
    def copy_packets(packets) -> list[tuple[bytes, int | None, int | None, bool]]:
        return [(bytes(p), p.pts, p.dts, p.is_keyframe) for p in packets]

    def decode(self, copies) -> Iterator[av.VideoFrame]:
        """Decoded frames (`rgb(frame)` converts one)."""
        if copies is None:
            yield from self.ctx.decode(None)
            return
        for data, pts, dts, key in copies:
            p = av.Packet(data)
            p.pts, p.dts, p.is_keyframe = pts, dts, key
            yield from self.ctx.decode(p)

    def rgb(self, frame) -> np.ndarray:
        return self.orientation.upright(_rgb(frame))


# ---------------------------------------------------------------- images


def read_image(path: str, *, max_pixels: int = 16384 * 16384) -> tuple[np.ndarray, ImageMeta]:
    """RGB uint8 HxWx3 in display orientation (EXIF transpose applied) and what write_image needs."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    path = str(path)
    _check_file(path)
    Image.MAX_IMAGE_PIXELS = max(max_pixels, Image.MAX_IMAGE_PIXELS or 0)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                if img.format not in _IMAGE_FORMATS:
                    raise MediaError(path, f"unsupported image format {img.format}")
                if img.width * img.height > max_pixels:
                    raise MediaError(path, f"resolution {img.width}x{img.height} over the limit of {max_pixels} pixels")
                if getattr(img, "n_frames", 1) > 1:
                    raise MediaError(path, "animated images are not supported")
                orientation = int(img.getexif().get(_ORIENTATION, 1) or 1)
                meta = ImageMeta(img.format, orientation if 1 <= orientation <= 8 else 1, img.mode,
                                 img.info.get("icc_profile"))
                img.load()
                if img.mode in ("I;16", "I;16B", "I;16L", "I"):
                    a = np.asarray(img, dtype=np.uint32)
                    img = Image.fromarray((a >> 8 if a.max() > 255 else a).astype(np.uint8), "L")
                img = ImageOps.exif_transpose(img) if orientation != 1 else img
                rgb = np.array(img.convert("RGB"), dtype=np.uint8)  # a writable copy
    except MediaError:
        raise
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as e:
        raise MediaError(path, f"image too large ({e})") from None
    except UnidentifiedImageError:
        raise MediaError(path, "not an image file or corrupt header") from None
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        raise MediaError(path, f"corrupt or truncated image ({e})") from None
    return rgb, meta


# inverse of ImageOps.exif_transpose: display orientation back to storage orientation
_UNDO = {2: "FLIP_LEFT_RIGHT", 3: "ROTATE_180", 4: "FLIP_TOP_BOTTOM", 5: "TRANSPOSE",
         6: "ROTATE_90", 7: "TRANSVERSE", 8: "ROTATE_270"}


def write_image(path: str, rgb: np.ndarray, meta: ImageMeta, *, lossless: bool = False) -> None:
    """Save in meta.format, stored in the original orientation, with an EXIF block of only Orientation."""
    from PIL import Image

    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected uint8 HxWx3, got {rgb.dtype} {rgb.shape}")
    img = Image.fromarray(np.ascontiguousarray(rgb), "RGB")
    if meta.orientation in _UNDO:
        img = img.transpose(getattr(Image.Transpose, _UNDO[meta.orientation]))
    if meta.mode == "L":
        img = img.convert("L")
    kw: dict = {}
    if meta.orientation != 1:
        exif = Image.Exif()
        exif[_ORIENTATION] = meta.orientation
        kw["exif"] = exif.tobytes()
    if meta.icc_profile:
        kw["icc_profile"] = meta.icc_profile
    fmt = meta.format.upper()
    if fmt == "JPEG":  # JPEG has no lossless mode: lossless=True means quality 100 without chroma subsampling
        kw.update({"quality": 100, "subsampling": 0} if lossless else {"quality": 95})
    elif fmt == "WEBP":
        kw.update({"lossless": True} if lossless else {"quality": 95})
    elif fmt != "PNG":
        raise ValueError(f"{path}: unsupported image format {meta.format}")
    img.save(str(path), format=fmt, **kw)
