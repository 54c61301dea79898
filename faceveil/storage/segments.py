"""A video encoded in pieces, side by side, then put together: each segment is a frame range of the
input edited and encoded alone (video only, the original timestamps), and `join_segments` muxes
their packets in order with every other stream of the input, as `transcode_video` keeps them. The
joined video is the one a single pass would write, frame for frame and timestamp for timestamp."""

from __future__ import annotations

import heapq
import os
from pathlib import Path
from typing import Callable, Container, Iterator

import av
import numpy as np

from faceveil.storage.media import (
    MediaError,
    TranscodeResult,
    VideoInfo,
    _check_output,
    _decode_frames,
    _Encoder,
    _first_frame,
    _flush_audio,
    _no_partial,
    _open,
    _plan_streams,
    _read_ahead,
    _SeekMiss,
    _video_stream,
    open_output,
    probe_video,
)
from faceveil.storage.orientation import IDENTITY_MATRIX


def segment_suffix(output_suffix: str, lossless: bool = False) -> str:
    """The container a segment of an output with this suffix is written in: MP4 for H.264 (it keeps
    each packet's decoding time, which Matroska drops for reordered frames), else the output's own
    (FFV1 and VP9 frames decode in presentation order)."""
    s = output_suffix.lower()
    return s if lossless or s in (".webm", ".avi") else ".mp4"


def encode_segment(
    src: str,
    dst: str,
    info: VideoInfo,
    start: int,
    stop: int,
    edit: Callable[[int, np.ndarray], np.ndarray],
    *,
    only: Container[int] | None = None,
    lossless: bool = False,
    crf: int = 18,
    preset: str = "veryfast",
    tap: Callable[[list, object], None] | None = None,
) -> int:
    """Frames [start, stop) of `src`, edit(index, upright rgb) -> upright rgb (frames not in `only`
    re-encoded as decoded), encoded into `dst` (video only; its extension is the final output's).
    Returns the number of frames written (`segment_suffix` says which container)."""
    src, dst = str(src), str(dst)
    ext = Path(dst).suffix.lower()
    _check_output(dst, ext, lossless)
    if ext == ".avi":
        raise ValueError(f"{dst}: avi keeps no presentation timestamps to join segments by")
    first = _first_frame(src)
    convert = None if only is None or lossless else (lambda i: i in only)
    n = start
    with _no_partial(dst), open_output(dst) as out:
        enc = _Encoder(out, ext, info, first, lossless, crf, preset, tap, [])
        for i, frame, rgb in _read_ahead(_frames(src, info, start, stop, convert)):
            if i != n:
                raise MediaError(src, f"frame {n} missing in decode (got {i})")
            try:
                enc.put(i, edit(i, rgb) if rgb is not None else None, frame)
            except av.FFmpegError as e:
                raise MediaError(src, f"encode error at video frame {i} ({e})") from None
            n += 1
        if n != stop:
            raise MediaError(src, f"truncated or corrupt: decoded frames {start}..{n - 1} of {start}..{stop - 1}")
        enc.flush()
    return n - start


def _frames(src: str, info: VideoInfo, start: int, stop: int, convert) -> Iterator:
    try:
        yield from _decode_frames(src, info, start, stop, start > 0, convert)
    except _SeekMiss:  # the seek landed past `start`: decode from the beginning
        yield from _decode_frames(src, info, start, stop, False, convert)


def join_segments(src: str, dst: str, info: VideoInfo, parts: list[str]) -> TranscodeResult:
    """The video packets of `parts` (segments in frame order, identical codec settings) and every
    other stream of `src` (copied, or audio re-encoded where the container needs it), interleaved by
    time into `dst`."""
    src, dst = str(src), str(dst)
    ext = Path(dst).suffix.lower()
    notes: list[str] = []
    segments = [av.open(str(p), "r") for p in parts]
    try:
        with _no_partial(dst), _open(src) as inp, open_output(dst) as out:
            vin = _video_stream(inp, src)
            first_seg = segments[0].streams.video[0]
            extradata = first_seg.codec_context.extradata
            for k, seg in enumerate(segments[1:], 1):
                if seg.streams.video[0].codec_context.extradata != extradata:
                    raise MediaError(src, f"segment {k} was encoded with other codec parameters than segment 0")
            vout = out.add_stream_from_template(first_seg)
            vout.time_base = first_seg.time_base
            _keep_display_matrix(vout, _first_frame(src))
            plan = _plan_streams(inp, out, vin, ext, notes)
            n = 0
            for _, item in _by_time(_video_packets(segments, vout), _other_packets(inp, plan, src)):
                kind, k, x = item
                if kind == "video":
                    n += 1
                    out.mux(x)
                elif kind == "copy":
                    x.stream = plan[k][1]
                    out.mux(x)
                else:
                    out.mux(plan[k][1].encode(x))
            _flush_audio(plan, out)
    finally:
        for seg in segments:
            seg.close()
    oi = probe_video(dst, max_pixels=max(info.width * info.height, 1))
    if oi.n_frames != info.n_frames:
        os.remove(dst)
        raise MediaError(src, f"joined {oi.n_frames} frames of {info.n_frames}")
    return TranscodeResult(info.n_frames, oi.n_frames, info.duration_s, oi.duration_s, oi.streams, notes)


def _keep_display_matrix(vout, first) -> None:
    sd = first.side_data.get("DISPLAYMATRIX") if first.side_data else None
    if sd is not None:
        m = [int(v) for v in np.frombuffer(bytes(sd), dtype="=i4")[:9]]
        if tuple(m) != IDENTITY_MATRIX:
            vout.set_display_matrix(m)


def _time(p) -> float:
    t = p.dts if p.dts is not None else p.pts
    return float(t * p.time_base) if t is not None and p.time_base else float("-inf")


def _video_packets(segments, vout) -> Iterator:
    for seg in segments:
        for p in seg.demux(seg.streams.video[0]):
            if p.size:
                if p.dts is None:  # a container that keeps no decoding times: frames in presentation order
                    p.dts = p.pts
                p.stream = vout
                yield _time(p), ("video", None, p)


def _other_packets(inp, plan: dict, src: str) -> Iterator:
    streams = [inp.streams[k] for k in plan]
    if not streams:
        return
    try:
        for p in inp.demux(*streams):
            k = p.stream.index
            how, _ = plan[k]
            if how == "copy" and p.size:
                yield _time(p), ("copy", k, p)
            elif how == "audio":
                for af in p.decode():
                    yield float(af.pts * af.time_base) if af.pts is not None else float("-inf"), ("audio", k, af)
    except av.FFmpegError as e:
        raise MediaError(src, f"demux error in stream {k} ({e})") from None


def _by_time(*sources) -> Iterator:
    """(time, item) of several time-ordered sources, merged by time (ties: earlier sources first)."""
    tagged = [(((t, n, i), x) for i, (t, x) in enumerate(src)) for n, src in enumerate(sources)]
    for (t, _, _), x in heapq.merge(*tagged, key=lambda e: e[0]):
        yield t, x


__all__ = ["encode_segment", "join_segments", "segment_suffix"]
