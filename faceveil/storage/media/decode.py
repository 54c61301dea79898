"""Decoding video to upright RGB frames: iter_frames for a range of a file (seeking, with a fallback
to decoding from the start), the first frame, a background read-ahead that overlaps decoding with
the consumer, and Redecoder for an encoder's own packets."""

from __future__ import annotations

import queue
import threading
from typing import Callable, Iterator

import av
import numpy as np

from faceveil.storage.media.images import read_image
from faceveil.storage.media.probe import MediaError, VideoInfo, _open, _video_stream, probe_video
from faceveil.storage.orientation import Orientation


def _frame_index(info: VideoInfo, frame, path: str) -> int:
    """The frame's index by its pts; -1 for a picture from before the first keyframe (a stream cut
    mid-GOP), which the probe does not count as one of the video's frames."""
    if frame.pts is None:
        raise MediaError(path, "decoded frame without timestamp")
    if frame.pts < info.frame_pts[0]:
        return -1
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
                i = cur + 1 if seq and cur is not None else _frame_index(info, frame, path)
                if i < 0:
                    continue
                cur = i
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
    if seek and nxt == start:  # the seek landed nowhere (MPEG-TS with one keyframe: at its end)
        raise _SeekMiss
    raise MediaError(path, f"truncated: decoded frames {start}..{nxt - 1}, expected up to {stop - 1}")


def iter_frames(
    path: str, info: VideoInfo, start: int = 0, stop: int | None = None, select: Callable[[int], bool] | None = None
) -> Iterator[tuple[int, np.ndarray]]:
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


def first_field(rgb: np.ndarray, info: VideoInfo) -> np.ndarray:
    """An upright frame of interlaced video as one instant, for a detector: its first field, line-
    doubled (the woven frame's combs hide moving faces: on a panning crowd woven frames gave 66 % of
    the faces, the first field 92 %). Progressive frames come back as they are."""
    if not info.interlaced:
        return rgb
    import cv2

    coded = info.orientation.coded(rgb)
    field = coded[0::2] if info.interlaced == "tff" else coded[1::2]
    doubled = cv2.resize(field, (coded.shape[1], coded.shape[0]), interpolation=cv2.INTER_LINEAR)
    return info.orientation.upright(doubled)


def _first_frame(path: str):
    with _open(path) as c:
        try:
            for f in c.decode(_video_stream(c, path)):
                return f
        except av.FFmpegError as e:
            raise MediaError(path, f"decode error in first frame ({e})") from None
    raise MediaError(path, "no decodable video frame")


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


class Redecoder:
    """Decodes copies of an encoder's packets again: the frames a player of the output will show, in
    display order (`copy_packets` in the encoding thread, `decode` anywhere, `decode(None)` to flush,
    `rgb(frame)` upright as the player shows it)."""

    def __init__(
        self,
        codec_name: str,
        extradata: bytes | None,
        width: int,
        height: int,
        orientation: Orientation = Orientation(),
    ):
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


def read_frame(path: str, kind: str, index: int = 0, name: str | None = None) -> np.ndarray:
    """Frame `index` of the local media file at `path` ('image': only frame 0; else a video), RGB,
    upright; a ValueError naming `name` (default the path) when there is no such frame."""
    name = name or str(path)
    if kind == "image":
        if index != 0:
            raise ValueError(f"{name}: a photo has only frame 0")
        return read_image(path)[0]
    info = probe_video(path)
    if not 0 <= index < info.n_frames:
        raise ValueError(f"{name}: frame {index} is outside its {info.n_frames} frames")
    return next(iter_frames(path, info, index, index + 1))[1]
