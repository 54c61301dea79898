"""Benchmark videos of crowds: a moving camera over the detection ground truth (faces known in every
frame) and the MOT20 crowd clip at 720p. Both are H.264 mp4 with a quiet AAC tone as audio."""

from __future__ import annotations

from contextlib import contextmanager
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
from PIL import Image

from common import ground_truth, shared_data

AUDIO_RATE = 48000


@contextmanager
def h264_writer(dst: Path, fps: int | Fraction, size=(1280, 720)):
    """Yields write(rgb): frames to libx264 (crf 18, veryfast, yuv420p) with an AAC stereo tone alongside."""
    fps = Fraction(fps)
    with av.open(str(dst), "w") as out:
        vs = out.add_stream("libx264", rate=fps, options={"crf": "18", "preset": "veryfast"})
        vs.width, vs.height, vs.pix_fmt = size[0], size[1], "yuv420p"
        aus = out.add_stream("aac", rate=AUDIO_RATE, layout="stereo")
        state = {"n": 0, "sample": 0}

        def write(rgb: np.ndarray) -> None:
            vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
            vf.pts, vf.time_base = state["n"], 1 / fps
            out.mux(vs.encode(vf))
            state["n"] += 1
            while state["sample"] + 1024 <= state["n"] * AUDIO_RATE / fps:
                t = (state["sample"] + np.arange(1024)) / AUDIO_RATE
                tone = (0.1 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
                af = av.AudioFrame.from_ndarray(np.stack([tone, tone]), format="fltp", layout="stereo")
                af.sample_rate, af.pts, af.time_base = AUDIO_RATE, state["sample"], Fraction(1, AUDIO_RATE)
                out.mux(aus.encode(af))
                state["sample"] += 1024

        yield write
        out.mux(vs.encode(None))
        out.mux(aus.encode(None))


def _schedule(wider: list[str], dlib: list[str], rng: np.random.Generator):
    """Endless (image, frames-at-30-fps) cycle: two WIDER parade images, then one dlib image."""
    w, d = list(wider), list(dlib)
    rng.shuffle(w)
    rng.shuffle(d)
    i = j = 0
    while True:
        for _ in range(2):
            yield w[i % len(w)], 60
            i += 1
        yield d[j % len(d)], 30
        j += 1


def _smooth(t: float) -> float:
    return t * t * (3 - 2 * t)


def _camera(img_wh, size, t: float, start, end) -> tuple[float, float, float]:
    """Window (x0, y0, scale) in image pixels at segment time t in [0, 1]; scale maps image to output pixels.
    start/end = (zoom, cx, cy): zoom 1 shows the whole image (letterboxed), (cx, cy) the window's centre in
    image pixels, moved as little as needed to keep the window inside the image (centred when larger)."""
    W, H = img_wh
    s = _smooth(t)
    zoom, cx, cy = (a + (b - a) * s for a, b in zip(start, end))
    scale = zoom * min(size[0] / W, size[1] / H)
    ww, wh = size[0] / scale, size[1] / scale
    x0 = float(np.clip(cx - ww / 2, 0, W - ww)) if ww <= W else (W - ww) / 2
    y0 = float(np.clip(cy - wh / 2, 0, H - wh)) if wh <= H else (H - wh) / 2
    return x0, y0, scale


def _render(img: np.ndarray, x0: float, y0: float, scale: float, size) -> np.ndarray:
    """Output pixel edge u = scale * (x - x0) (cv2 maps pixel centres, hence the half-pixel terms)."""
    m = np.array([[scale, 0, 0.5 * scale - 0.5 - scale * x0], [0, scale, 0.5 * scale - 0.5 - scale * y0]], np.float64)
    return cv2.warpAffine(img, m, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def _visible(boxes: np.ndarray, size, keep: float = 0.7) -> np.ndarray:
    """Boxes at least `keep` of their area inside the frame, clipped to it."""
    clipped = np.clip(boxes, 0, [size[0], size[1], size[0], size[1]]).astype(np.float32)
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    inside = (clipped[:, 2] - clipped[:, 0]) * (clipped[:, 3] - clipped[:, 1])
    return clipped[inside >= keep * np.maximum(area, 1e-6)].reshape(-1, 4)


def _segment_path(boxes: np.ndarray, img_wh, rng: np.random.Generator):
    """Random start and end (zoom, cx, cy) of one shot: zoom between 1x and 2.2x, changing by >= 0.4; the
    camera starts near one face and pans towards another, at most a third of the image's width."""
    z0 = rng.uniform(1.0, 2.2)
    z1 = z0 + rng.choice([-1, 1]) * rng.uniform(0.4, 1.0)
    if not 1.0 <= z1 <= 2.2:
        z1 = z0 - 0.6 if z0 > 1.6 else z0 + 0.6
    centres = (boxes[:, :2] + boxes[:, 2:]) / 2
    jitter = 0.1 * np.asarray(img_wh, np.float64)
    p0 = centres[rng.integers(len(centres))] + rng.uniform(-1, 1, 2) * jitter
    step = centres[rng.integers(len(centres))] - p0
    p1 = p0 + step * min(1.0, img_wh[0] / 3 / max(np.hypot(*step), 1e-6))
    return (z0, *p0), (z1, *p1)


def moving_crowd(dst: Path, seconds: float = 10.0, fps: int = 30, size=(1280, 720), seed: int = 0) -> dict:
    """A virtual camera panning and zooming over the detection images (WIDER parades mostly, dlib too),
    one shot per image with hard cuts between. Returns {'frames', 'fps', 'boxes': {frame: (K,4) xyxy}}:
    the ground truth in output pixels, boxes at least 70% inside the frame, clipped."""
    rng = np.random.default_rng(seed)
    gt = ground_truth()
    wider = sorted(p for p, g in gt.items() if g["set"] == "wider")
    dlib = sorted(p for p, g in gt.items() if g["set"] == "dlib")
    n_target, n, boxes = int(round(seconds * fps)), 0, {}
    with h264_writer(dst, fps, size) as write:
        for path, shot in _schedule(wider, dlib, rng):
            if n >= n_target:
                break
            img = np.asarray(Image.open(path).convert("RGB"))
            start, end = _segment_path(gt[path]["boxes"], (img.shape[1], img.shape[0]), rng)
            length = max(2, int(round(shot * fps / 30)))
            for k in range(min(length, n_target - n)):
                x0, y0, scale = _camera((img.shape[1], img.shape[0]), size, k / (length - 1), start, end)
                write(_render(img, x0, y0, scale, size))
                b = (gt[path]["boxes"] - [x0, y0, x0, y0]) * scale
                boxes[n] = _visible(b, size)
                n += 1
    return {"frames": n, "fps": fps, "boxes": boxes}


def _fit(rgb: np.ndarray, size) -> np.ndarray:
    """Scaled to fit `size`, centred, black padding."""
    h, w = rgb.shape[:2]
    s = min(size[0] / w, size[1] / h)
    nw, nh = min(size[0], round(w * s)), min(size[1], round(h * s))
    out = np.zeros((size[1], size[0], 3), np.uint8)
    x, y = (size[0] - nw) // 2, (size[1] - nh) // 2
    out[y : y + nh, x : x + nw] = cv2.resize(rgb, (nw, nh), interpolation=cv2.INTER_LINEAR)
    return out


def crowd_clip(dst: Path, seconds: float = 20.0, fps: int = 25) -> int:
    """One crowd clip: the first half the detection set panned and zoomed (daylight, ~20-40 faces a
    frame), the second half the MOT20-05 night crowd (hundreds of small heads), both 1280x720 at `fps`.
    Returns the frame count."""
    import tempfile

    half = seconds / 2
    with tempfile.TemporaryDirectory(prefix="faceveil-crowd-") as tmp:
        parts = [Path(tmp) / "moving.mp4", Path(tmp) / "mot20.mp4"]
        moving_crowd(parts[0], seconds=half, fps=fps)
        mot20_720p(parts[1], seconds=half, fps=fps)
        n = 0
        with h264_writer(dst, fps) as write:
            for part in parts:
                with av.open(str(part)) as c:
                    for f in c.decode(video=0):
                        write(f.to_ndarray(format="rgb24"))
                        n += 1
    return n


def mot20_720p(dst: Path, seconds: float | None = None, fps=None) -> int:
    """The MOT20-05 crowd clip (826x540, 25 fps) fitted into 1280x720; looped forward then backward up to
    `seconds` when given (else played once), at `fps` (default: the clip's). Returns the frame count."""
    src = shared_data() / "video" / "dlib_MOT20-05_crowd.mp4"
    with av.open(str(src)) as c:
        s = c.streams.video[0]
        rate = Fraction(fps) if fps else Fraction(s.average_rate)
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(s)]
    order = list(range(len(frames)))
    cycle = order + order[-2:0:-1]  # 0..n-1, n-2..1: continuous motion, no repeated end frames
    n_target = int(round(seconds * rate)) if seconds is not None else len(frames)
    with h264_writer(dst, rate) as write:
        for i in range(n_target):
            write(_fit(frames[cycle[i % len(cycle)]], (1280, 720)))
    return n_target
