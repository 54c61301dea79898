"""Re-encoding video: transcode_video (decode, edit upright RGB, encode in the coded orientation with
the original timestamps and display matrix, remux the other streams), the encoder writer it and
segments use, and _no_partial, which removes a half-written output."""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Callable, Container, Iterator

import av
import numpy as np

from faceveil.storage.media.decode import _first_frame, _read_ahead, _sequential
from faceveil.storage.media.probe import (
    VIDEO_EXTS,
    MediaError,
    StreamInfo,
    VideoInfo,
    _open,
    _video_stream,
    probe_video,
)
from faceveil.storage.media.streams import _demuxed, _flush_audio, _plan_streams
from faceveil.storage.orientation import IDENTITY_MATRIX


@dataclass
class TranscodeResult:
    frames_in: int
    frames_out: int
    duration_in_s: float
    duration_out_s: float
    streams_out: list[StreamInfo]
    notes: list[str] = field(default_factory=list)


def _add_video(out, ext: str, info: VideoInfo, first, lossless: bool, crf: int, preset: str):
    rate = Fraction(info.fps).limit_denominator(1001000) if info.fps > 0 else Fraction(25)
    if lossless:
        s = out.add_stream("ffv1", rate=rate, options={"level": "3", "slicecrc": "1"})
        s.pix_fmt = "bgr0"
    elif ext == ".webm":
        s = out.add_stream(
            "libvpx-vp9",
            rate=rate,
            options={"deadline": "realtime", "cpu-used": "8", "crf": str(crf), "b": "0", "row-mt": "1"},
        )
        s.pix_fmt = "yuv420p"
    else:  # interlaced stays interlaced (coded as fields, same order): progressive flags make players show combs
        fields = {"flags": "+ildct+ilme", "x264-params": f"{info.interlaced}=1"} if info.interlaced else {}
        s = out.add_stream("libx264", rate=rate, options={"crf": str(crf), "preset": preset, **fields})
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


class _Encoder:
    """The video stream of an output being written: frames in (edited RGB, upright, or decoded frames
    as they are), encoded in the coded orientation with the original timestamps, muxed with their
    durations (encoders leave them at 0; the last one sets the file's duration); `tap(packets,
    codec_context)` sees each batch of packets before it is muxed."""

    def __init__(self, out, ext: str, info: VideoInfo, first, lossless: bool, crf: int, preset: str, tap, notes: list):
        self.out, self.info, self.tap, self.notes, self.ext = out, info, tap, notes, ext
        self.vout = _add_video(out, ext, info, first, lossless, crf, preset)
        self.conv = (
            {"format": "bgr0"}
            if lossless
            else {  # RGB -> YUV with the source's matrix and range
                "dst_colorspace": int(first.colorspace) if int(first.colorspace) in (1, 4, 5, 7, 9) else None,
                "dst_color_range": int(first.color_range) or None,
                "format": self.vout.pix_fmt,
            }
        )
        self.tb = self.vout.codec_context.time_base
        self.shape = (info.height, info.width, 3)
        self.end = info.frame_pts[0] + round(Fraction(info.duration_s) / info.time_base)
        self.last, self.pending = -1, {}

    def put(self, i: int, rgb: np.ndarray | None, frame) -> None:
        """Frame i: the edited upright `rgb`, or (rgb None) the decoded `frame` as it is."""
        info = self.info
        if rgb is not None:
            if not (isinstance(rgb, np.ndarray) and rgb.shape == self.shape and rgb.dtype == np.uint8):
                raise ValueError(
                    f"edit must return uint8 {self.shape}, got "
                    f"{getattr(rgb, 'dtype', type(rgb))} {getattr(rgb, 'shape', '')}"
                )
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


MUXERS = {".ts": "mpegts", ".m2ts": "mpegts", ".mts": "mpegts", ".m4v": "mp4", ".3gp": "3gp"}  # else ffmpeg's guess


def open_output(dst: str):
    """`dst` opened for writing in the container its extension names (MUXERS where ffmpeg's guess is not it)."""
    return av.open(dst, "w", format=MUXERS.get(Path(dst).suffix.lower()))


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


def transcode_video(
    src: str,
    dst: str,
    info: VideoInfo,
    edit: Callable[[int, np.ndarray], np.ndarray],
    *,
    only: Container[int] | None = None,
    lossless: bool = False,
    crf: int = 18,
    preset: str = "veryfast",
    tap: Callable[[list, object], None] | None = None,
) -> TranscodeResult:
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
    with _no_partial(dst), _open(src) as inp, open_output(dst) as out:
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
