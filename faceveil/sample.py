"""The built-in sample archive: videos of moving real faces with an audio track, and photos, made
only from images that ship inside packages (scikit-image's astronaut and camera, matplotlib's
Grace Hopper)."""
from __future__ import annotations

import argparse
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
from PIL import Image


def _sources() -> dict[str, np.ndarray]:
    import matplotlib.cbook as cbook
    from skimage import data

    astronaut = data.astronaut()
    with Image.open(cbook.get_sample_data("grace_hopper.jpg")) as im:
        hopper = np.asarray(im.convert("RGB"))
    return {"astronaut": astronaut, "hopper": hopper, "camera": data.camera(),
            "astronaut_face": astronaut[20:210, 145:305], "hopper_face": hopper[90:380, 130:400]}


def _sprite(face: np.ndarray, height: int, flip: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """A face crop scaled to `height`, with a soft elliptical alpha mask."""
    w = max(2, int(face.shape[1] * height / face.shape[0]))
    img = cv2.resize(face, (w, height), interpolation=cv2.INTER_AREA)
    if flip:
        img = img[:, ::-1]
    alpha = np.zeros((height, w), np.float32)
    cv2.ellipse(alpha, ((w / 2, height / 2), (w * 0.98, height * 0.98), 0), 1.0, -1)
    alpha = cv2.GaussianBlur(alpha, (0, 0), max(1.0, height / 40))
    return img.astype(np.float32), alpha[..., None]


def _paste(frame: np.ndarray, sprite, x: float, y: float) -> None:
    img, alpha = sprite
    h, w = alpha.shape[:2]
    x0, y0 = int(round(x)), int(round(y))
    fx0, fy0, fx1, fy1 = max(x0, 0), max(y0, 0), min(x0 + w, frame.shape[1]), min(y0 + h, frame.shape[0])
    if fx1 <= fx0 or fy1 <= fy0:
        return
    sx, sy = fx0 - x0, fy0 - y0
    a = alpha[sy:sy + fy1 - fy0, sx:sx + fx1 - fx0]
    roi = frame[fy0:fy1, fx0:fx1]
    roi[:] = a * img[sy:sy + fy1 - fy0, sx:sx + fx1 - fx0] + (1 - a) * roi


def _background(camera: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    w, h = size
    bg = cv2.GaussianBlur(cv2.resize(camera, (w, h)), (0, 0), 3).astype(np.float32)
    tint = np.array([0.85, 0.95, 1.1], np.float32)
    return np.clip(bg[..., None] * tint * 0.8 + 20, 0, 255)


def _write_clip(path: Path, actors, seconds: float, fps: int, size: tuple[int, int], bg: np.ndarray, seed: int) -> None:
    """actors: list of (sprite, start_frame, (x0, y0), (vx, vy), scale_per_frame)."""
    rng = np.random.default_rng(seed)
    n = int(round(seconds * fps))
    rate = 48000
    t = np.arange(int(round(seconds * rate))) / rate
    tone = 0.1 * np.sin(2 * np.pi * (330 + 110 * t / seconds) * t) + 0.01 * rng.standard_normal(len(t))
    audio = np.stack([tone, tone * 0.8]).astype(np.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as out:
        vs = out.add_stream("libx264", rate=fps, options={"crf": "20", "preset": "veryfast"})
        vs.width, vs.height, vs.pix_fmt = size[0], size[1], "yuv420p"
        aus = out.add_stream("aac", rate=rate, layout="stereo")
        sample = 0
        for i in range(n):
            frame = bg.copy()
            for sprite, start, (x0, y0), (vx, vy), _ in actors:
                if i >= start:
                    _paste(frame, sprite, x0 + vx * (i - start), y0 + vy * (i - start))
            if n // 3 <= i < n // 3 + 6:  # an occluder sweeps over the middle of the frame
                x = int(size[0] * 0.3 + 25 * (i - n // 3))
                frame[:, x:x + 40] = 90
            vf = av.VideoFrame.from_ndarray(np.clip(frame, 0, 255).astype(np.uint8), format="rgb24")
            vf.pts = i
            vf.time_base = Fraction(1, fps)
            out.mux(vs.encode(vf))
            until = min(audio.shape[1], int(round((i + 1) * rate / fps)))
            while sample + 1024 <= until or (i == n - 1 and sample < audio.shape[1]):
                chunk = audio[:, sample:sample + 1024]
                af = av.AudioFrame.from_ndarray(np.ascontiguousarray(chunk), format="fltp", layout="stereo")
                af.sample_rate, af.pts, af.time_base = rate, sample, Fraction(1, rate)
                out.mux(aus.encode(af))
                sample += chunk.shape[1]
        out.mux(vs.encode(None))
        out.mux(aus.encode(None))


def make_sample_archive(dest: str | Path, *, seconds: float = 4.0, fps: int = 25, size: tuple[int, int] = (640, 360),
                        seed: int = 0) -> list[Path]:
    """Writes cameras/lobby/clip_001.mp4, cameras/parking/clip_002.mkv and photos/* under dest."""
    dest = Path(dest)
    src = _sources()
    bg = _background(src["camera"], size)
    w, h = size
    n = int(seconds * fps)
    a = _sprite(src["astronaut_face"], 130)
    g = _sprite(src["hopper_face"], 120)
    small = _sprite(src["astronaut_face"], 80, flip=True)
    lobby = [(a, 0, (20, 60), ((w - 200) / n, 40 / n), 0),
             (g, n // 4, (w - 20, 150), (-(w * 0.7) / n, -30 / n), 0),
             (small, 0, (w * 0.45, h - 110), (60 / n, -50 / n), 0)]
    parking = [(g, 0, (w * 0.6, 40), (-(w * 0.4) / n, 0), 0), (a, n // 5, (-60, 180), (w * 0.5 / n, -20 / n), 0)]
    out = [dest / "cameras/lobby/clip_001.mp4", dest / "cameras/parking/clip_002.mkv"]
    _write_clip(out[0], lobby, seconds, fps, size, bg, seed)
    _write_clip(out[1], parking, seconds / 2, fps, size, bg[::-1].copy(), seed + 1)
    photos = dest / "photos"
    photos.mkdir(parents=True, exist_ok=True)
    Image.fromarray(src["astronaut"]).save(photos / "astronaut.jpg", quality=92)
    Image.fromarray(src["hopper"]).save(photos / "grace_hopper.png")
    Image.fromarray(src["camera"]).save(photos / "camera.webp", quality=90)
    return out + [photos / "astronaut.jpg", photos / "grace_hopper.png", photos / "camera.webp"]


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("dest")
    for p in make_sample_archive(ap.parse_args().dest):
        print(p)
