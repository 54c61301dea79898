"""The built-in sample archive: short videos of moving real faces with an audio track, and photos,
made only from images that ship inside packages (scikit-image's astronaut and camera, matplotlib's
Grace Hopper). No network, deterministic for a given seed."""

from __future__ import annotations

import argparse
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
from PIL import Image

AUDIO_RATE = 48000


def _sources() -> dict[str, np.ndarray]:
    import matplotlib.cbook as cbook
    from skimage import data

    astronaut = data.astronaut()
    with Image.open(cbook.get_sample_data("grace_hopper.jpg")) as im:
        hopper = np.asarray(im.convert("RGB"))
    # face crops with some hair and chin (CenterFace boxes: astronaut x181-270 y58-178, hopper x173-358 y128-334)
    return {
        "astronaut": astronaut,
        "hopper": hopper,
        "camera": data.camera(),
        "astronaut_face": astronaut[20:215, 150:300],
        "hopper_face": hopper[85:385, 135:395],
    }


def _sprite(face: np.ndarray, height: int) -> tuple[np.ndarray, np.ndarray]:
    """`face` scaled to `height` (upright), with a soft elliptical alpha edge."""
    w = max(2, round(face.shape[1] * height / face.shape[0]))
    img = cv2.resize(face, (w, height), interpolation=cv2.INTER_AREA).astype(np.float32)
    alpha = np.zeros((height, w), np.float32)
    cv2.ellipse(alpha, (w // 2, height // 2), (int(w * 0.42), int(height * 0.47)), 0, 0, 360, 1.0, -1)
    alpha = cv2.GaussianBlur(alpha, (0, 0), max(1.0, height / 30))
    return img, alpha[..., None]


def _paste(frame: np.ndarray, sprite: tuple[np.ndarray, np.ndarray], cx: float, cy: float) -> None:
    """Alpha-blends `sprite` centred at (cx, cy), clipped to the frame."""
    img, alpha = sprite
    h, w = alpha.shape[:2]
    x0, y0 = round(cx - w / 2), round(cy - h / 2)
    fx0, fy0 = max(x0, 0), max(y0, 0)
    fx1, fy1 = min(x0 + w, frame.shape[1]), min(y0 + h, frame.shape[0])
    if fx1 <= fx0 or fy1 <= fy0:
        return
    sl = np.s_[fy0 - y0 : fy1 - y0, fx0 - x0 : fx1 - x0]
    roi = frame[fy0:fy1, fx0:fx1]
    roi += alpha[sl] * (img[sl] - roi)


def _background(camera: np.ndarray, size: tuple[int, int], flip: bool = False) -> np.ndarray:
    """A blurred, tinted, upscaled crop of camera() (tripod, lawn, skyline; not the cameraman's face)."""
    w, h = size
    crop = camera[200:380, 200:512][:, ::-1] if flip else camera[200:380, 200:512]
    bg = cv2.GaussianBlur(cv2.resize(crop, (w, h), interpolation=cv2.INTER_CUBIC), (0, 0), 4).astype(np.float32)
    grad = np.linspace(0.75, 1.05, h, dtype=np.float32)[:, None, None]
    tint = np.array([0.8, 0.92, 1.1], np.float32) if not flip else np.array([1.05, 0.95, 0.8], np.float32)
    return np.clip(bg[..., None] * tint * grad * 0.75 + 25, 0, 255)


def _audio(seconds: float, rng: np.random.Generator) -> np.ndarray:
    """A quiet rising chirp with a little noise, planar stereo float32 (2, n)."""
    t = np.arange(round(seconds * AUDIO_RATE)) / AUDIO_RATE
    tone = 0.08 * np.sin(2 * np.pi * (330 * t + 110 * t * t / (2 * seconds)))
    left = tone + 0.005 * rng.standard_normal(t.size)
    return np.stack([left, 0.7 * tone + 0.005 * rng.standard_normal(t.size)]).astype(np.float32)


def _write_clip(
    path: Path,
    faces: dict,
    actors: list,
    seconds: float,
    fps: int,
    size: tuple[int, int],
    bg: np.ndarray,
    occluder: tuple[int, int] | None,
    seed: int,
) -> None:
    """actors: (face key, height, start as a fraction of the clip, (x, y) from, (x, y) to, growth); eased paths."""
    rng = np.random.default_rng(seed)
    n, (w, h) = round(seconds * fps), size
    audio, frame_size, sample = _audio(seconds, rng), 1024, 0
    phases = rng.uniform(0, 2 * np.pi, len(actors))
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as out:
        vs = out.add_stream("libx264", rate=fps, options={"crf": "21", "preset": "veryfast"})
        vs.width, vs.height, vs.pix_fmt = w, h, "yuv420p"
        aus = out.add_stream("aac", rate=AUDIO_RATE, layout="stereo")
        for i in range(n):
            frame = bg.copy()
            for (key, height, t0, p0, p1, growth), ph in zip(actors, phases):
                start = round(t0 * n)
                if i < start:
                    continue
                u = (i - start) / max(1, n - 1 - start)
                e = u * u * (3 - 2 * u)  # smoothstep easing
                cx = p0[0] + (p1[0] - p0[0]) * e + 6 * np.sin(2 * np.pi * u + ph)
                cy = p0[1] + (p1[1] - p0[1]) * e + 4 * np.sin(3 * np.pi * u + ph)
                _paste(frame, _sprite(faces[key], round(height * (1 + growth * u))), cx, cy)
            if occluder and occluder[0] <= i < occluder[0] + 8:  # a bar sweeps past, briefly hiding a face
                x = occluder[1] + 14 * (i - occluder[0])
                frame[:, max(0, x) : x + 70] = (70, 64, 58)
            vf = av.VideoFrame.from_ndarray(np.clip(frame, 0, 255).astype(np.uint8), format="rgb24")
            vf.pts, vf.time_base = i, Fraction(1, fps)
            out.mux(vs.encode(vf))
            until = audio.shape[1] if i == n - 1 else round((i + 1) * AUDIO_RATE / fps)
            while sample < until:  # interleave: audio up to the end of this video frame
                chunk = np.ascontiguousarray(audio[:, sample : sample + frame_size])
                af = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="stereo")
                af.sample_rate, af.pts, af.time_base = AUDIO_RATE, sample, Fraction(1, AUDIO_RATE)
                out.mux(aus.encode(af))
                sample += chunk.shape[1]
        out.mux(vs.encode(None))
        out.mux(aus.encode(None))


def make_sample_archive(
    dest: str | Path, *, seconds: float = 4.0, fps: int = 25, size: tuple[int, int] = (640, 360), seed: int = 0
) -> list[Path]:
    """Writes cameras/lobby/clip_001.mp4, cameras/parking/clip_002.mkv and photos/* under `dest`."""
    dest, src, (w, h) = Path(dest), _sources(), size
    lobby = [
        ("astronaut_face", 120, 0.0, (0.12 * w, 0.32 * h), (0.55 * w, 0.45 * h), 0.15),
        ("hopper_face", 110, 0.25, (w + 40, 0.62 * h), (0.72 * w, 0.38 * h), -0.1),  # enters from the right
        ("astronaut_face", 90, 0.0, (0.45 * w, 0.78 * h), (0.2 * w, 0.7 * h), 0.2),
    ]
    parking = [
        ("hopper_face", 130, 0.0, (0.7 * w, 0.35 * h), (0.35 * w, 0.45 * h), 0.12),
        ("astronaut_face", 100, 0.15, (-40, 0.6 * h), (0.25 * w, 0.55 * h), 0.1),
    ]
    out = [dest / "cameras/lobby/clip_001.mp4", dest / "cameras/parking/clip_002.mkv"]
    _write_clip(
        out[0],
        src,
        lobby,
        seconds,
        fps,
        size,
        _background(src["camera"], size),
        (round(0.6 * seconds * fps), round(0.3 * w)),
        seed,
    )
    _write_clip(
        out[1], src, parking, min(2.0, seconds), fps, size, _background(src["camera"], size, flip=True), None, seed + 1
    )
    photos = dest / "photos"
    photos.mkdir(parents=True, exist_ok=True)
    Image.fromarray(src["astronaut"]).save(photos / "astronaut.jpg", quality=92)
    Image.fromarray(src["hopper"]).save(photos / "grace_hopper.png")
    Image.fromarray(src["camera"]).save(photos / "camera.webp", quality=90)
    return out + [photos / "astronaut.jpg", photos / "grace_hopper.png", photos / "camera.webp"]


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description="Write the built-in sample archive (videos with audio, photos).")
    ap.add_argument("dest", help="output folder (created if missing)")
    for p in make_sample_archive(ap.parse_args().dest):
        print(p)
