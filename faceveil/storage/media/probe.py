"""Probing videos: stream layout, display size, orientation and every frame's pts, with the checks
that refuse bad input (MediaError naming the file and the reason); which extensions are video
and which images. probe_video stays one 64-line function: one demux pass whose truncation and
corruption checks share its running state."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from fractions import Fraction

import av
import numpy as np

from faceveil.storage.orientation import Orientation


# MPEG-TS (.ts; .m2ts/.mts: AVCHD cameras, DVR exports) and the MP4 family (.m4v, .3gp: phones)
# beside the usual ones; an output keeps its input's container (encode.MUXERS). Not MPEG-PS (.mpg):
# its packets need not carry timestamps, which frames are matched by here.
VIDEO_EXTS = frozenset({".mp4", ".mkv", ".avi", ".mov", ".webm", ".ts", ".m2ts", ".mts", ".m4v", ".3gp"})
IMAGE_EXTS = frozenset({".jpg", ".jpeg", ".png", ".webp"})


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
    interlaced: str = ""  # "tff" / "bff" (top / bottom field first) for interlaced video, "" for progressive

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
        lead, keyed = [], False  # packets before the first keyframe: a stream cut mid-GOP (DVR, TS)
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
                    keyed = keyed or p.is_keyframe
                    (pts if keyed else lead).append(t)
                    dts.append(p.dts if p.dts is not None else t)
                    durs[t] = p.duration or 0
                if first is None and (p.size or pts):
                    frames = vs.decode(p)  # decode only until the first frame (rotation)
                    first = frames[0] if frames else None
        except av.FFmpegError as e:
            raise MediaError(path, f"truncated or corrupt data ({e})") from None
        if not keyed:  # no packet flagged a keyframe (intra refresh): every packet is a frame
            pts, lead = lead, []
        dts = dts[len(lead) :]  # what comes before the first keyframe decodes to nothing: not a frame
        if not pts:
            raise MediaError(path, "no video packets")
        if first is None:
            raise MediaError(path, "no decodable video frame")
        fmt = c.format.name
        if "mov" in fmt and vs.frames and len(pts) + len(lead) + n_discard < vs.frames:  # header counts samples
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
        return VideoInfo(
            path,
            dw,
            dh,
            fps,
            tb,
            fp,
            duration,
            round(first.rotation) % 360,
            _stream_infos(c),
            orientation,
            _interlacing(vs, first),
        )


def _interlacing(vs, first) -> str:
    """ "tff" or "bff" for interlaced video (the stream's field order; top first when it names none)."""
    if not first.interlaced_frame:
        return ""
    order = int(getattr(vs.codec_context, "field_order", 0) or 0)  # AVFieldOrder: 3 BB and 5 BT show bottom first
    return "bff" if order in (3, 5) else "tff"
