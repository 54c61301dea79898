"""A face clip with a known pulse, for the pulse-edit tests and benchmark: a real face photo, moved a
few pixels slowly (whole-pixel steps), whose skin carries a blood-volume pulse at `bpm`: `amp` grey
levels in G, the PBV direction in R and B, stochastically rounded so the 8-bit frames keep it. The
skin (`where`): "polygon", the forehead/cheek/nose mask of its first frame's landmarks (grown by `grow`
pixels), for the edit of that polygon alone; or "skin", every skin-coloured pixel of the head and neck
(`head_skin`, a YCrCb rule independent of faceveil's masks), as a real pulse is."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

PBV = np.array([0.33, 0.77, 0.53])


@dataclass
class Clip:
    frames: np.ndarray  # (T,H,W,3) uint8
    fps: float
    skin: np.ndarray  # (T,H,W) bool: where the pulse is
    boxes: np.ndarray  # (T,4) the face's box in each frame
    landmarks: np.ndarray  # (T,5,2)

    def trace(self, frames: np.ndarray | None = None) -> np.ndarray:
        """The skin-mean RGB trace (T,3) of `frames` (default: the clip's own) over the pulse's skin."""
        frames = self.frames if frames is None else frames
        return np.stack([f[m].mean(axis=0, dtype=np.float64) for f, m in zip(frames, self.skin)])

    def crops(self, frames: np.ndarray | None = None) -> np.ndarray:
        """Face crops (T,h,w,3) of the first frame's box, moved with the face."""
        frames = self.frames if frames is None else frames
        x1, y1, x2, y2 = np.round(self.boxes[0]).astype(int)
        out = []
        for f, b in zip(frames, self.boxes):
            dx, dy = np.round(b[:2] - self.boxes[0][:2]).astype(int)
            out.append(f[max(0, y1 + dy) : y2 + dy, max(0, x1 + dx) : x2 + dx])
        h = min(o.shape[0] for o in out)
        w = min(o.shape[1] for o in out)
        return np.stack([o[:h, :w] for o in out])


def head_skin(rgb: np.ndarray, box) -> np.ndarray:
    """Skin-coloured pixels (YCrCb: Y > 40, Cr 135-180, Cb 80-130) of the face box grown to the hair
    and ears (0.3 of its height up, 0.2 of its width aside) and the neck (0.5 of its height down)."""
    x1, y1, x2, y2 = box
    w, h = x2 - x1, y2 - y1
    head = np.zeros(rgb.shape[:2], bool)
    head[max(0, int(y1 - 0.3 * h)) : int(y2 + 0.5 * h), max(0, int(x1 - 0.2 * w)) : int(x2 + 0.2 * w)] = True
    ycc = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2YCrCb)
    return (
        head
        & (ycc[..., 0] > 40)
        & (ycc[..., 1] >= 135)
        & (ycc[..., 1] <= 180)
        & (ycc[..., 2] >= 80)
        & (ycc[..., 2] <= 130)
    )


def make_clip(
    photo: str,
    bpm: float = 72.0,
    seconds: float = 10.0,
    fps: float = 30.0,
    amp: float = 0.5,
    size: tuple[int, int] = (320, 240),
    motion_px: int = 3,
    grow: int = 0,
    seed: int = 0,
    where: str = "polygon",
) -> Clip:
    from faceveil.models.detectors import create_detector
    from faceveil.models.rppg.skin import skin_region

    rgb = cv2.cvtColor(cv2.imread(photo), cv2.COLOR_BGR2RGB)
    w, h = size
    pad = motion_px + 1
    scale = min((w + 2 * pad) / rgb.shape[1], (h + 2 * pad) / rgb.shape[0]) * 1.0
    canvas = cv2.resize(
        rgb, (int(np.ceil(rgb.shape[1] * scale)), int(np.ceil(rgb.shape[0] * scale))), interpolation=cv2.INTER_AREA
    )
    big = np.zeros((h + 2 * pad, w + 2 * pad, 3), np.uint8)
    ch, cw = min(canvas.shape[0], big.shape[0]), min(canvas.shape[1], big.shape[1])
    big[:ch, :cw] = canvas[:ch, :cw]
    n = int(round(seconds * fps))
    t = np.arange(n) / fps
    shift = np.stack(
        [np.round(motion_px * np.sin(2 * np.pi * 0.08 * t)), np.round(motion_px * np.sin(2 * np.pi * 0.05 * t + 1))],
        axis=1,
    ).astype(int)  # (dx, dy)
    first = big[pad : pad + h, pad : pad + w]
    dets = create_detector().detect(np.ascontiguousarray(first))
    if not len(dets):
        raise ValueError(f"{photo}: no face found")
    j = int(np.argmax(dets.scores))
    box0, lm0 = dets.boxes[j], dets.landmarks[j]
    if where == "skin":
        mask0 = head_skin(first, box0).astype(np.uint8)
    else:
        mask0 = skin_region(lm0, box0, w, h).full(h, w).astype(np.uint8)
    if grow:
        mask0 = cv2.dilate(mask0, np.ones((2 * grow + 1, 2 * grow + 1), np.uint8))
    rng = np.random.default_rng(seed)
    pulse = amp / PBV[1] * np.sin(2 * np.pi * bpm / 60.0 * t)
    frames = np.empty((n, h, w, 3), np.uint8)
    skins = np.zeros((n, h, w), bool)
    boxes, lms = np.zeros((n, 4), np.float32), np.zeros((n, 5, 2), np.float32)
    for i, (dx, dy) in enumerate(shift):
        f = big[pad - dy : pad - dy + h, pad - dx : pad - dx + w].astype(np.float32)
        m = np.zeros((h, w), bool)
        ys, xs = np.nonzero(mask0)
        ys, xs = ys + dy, xs + dx
        keep = (ys >= 0) & (ys < h) & (xs >= 0) & (xs < w)
        m[ys[keep], xs[keep]] = True
        f[m] += pulse[i] * PBV * f[m].mean(axis=0) / f[m].mean(axis=0)[1]
        frames[i] = np.clip(np.floor(f + rng.random(f.shape, dtype=np.float32)), 0, 255).astype(np.uint8)
        skins[i] = m
        boxes[i] = box0 + [dx, dy, dx, dy]
        lms[i] = lm0 + [dx, dy]
    return Clip(frames, fps, skins, boxes, lms)


def write_video(path: str, frames: np.ndarray, fps: float) -> None:
    """Lossless (FFV1, .mkv) so the sub-grey-level pulse is kept exactly."""
    import av
    from fractions import Fraction

    with av.open(path, "w") as out:
        s = out.add_stream("ffv1", rate=Fraction(int(round(fps * 1000)), 1000))
        s.width, s.height, s.pix_fmt = frames.shape[2], frames.shape[1], "bgr0"
        for f in frames:
            for p in s.encode(av.VideoFrame.from_ndarray(f, format="rgb24").reformat(format="bgr0")):
                out.mux(p)
        for p in s.encode():
            out.mux(p)


def read_video(path: str) -> np.ndarray:
    import av

    with av.open(path) as c:
        return np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])


def pipeline_masks(private_dest, frames: np.ndarray) -> np.ndarray:
    """The skin masks faceveil edited: pipeline/pulse.skin_of on the faces of its detections manifest
    (`private_dest`: the run's private folder) in `frames` (the input, as the pipeline saw it)."""
    import pyarrow.parquet as pq

    from faceveil.models.detections import Detections
    from faceveil.pipeline.pulse import skin_of

    t, h, w = frames.shape[:3]
    masks = np.zeros((t, h, w), bool)
    for r in pq.read_table(private_dest / "detections").to_pandas().itertuples():
        if r.track_id < 0:
            continue
        d = Detections(
            np.float32([[r.x1, r.y1, r.x2, r.y2]]),
            [r.score],
            np.reshape(r.landmarks, (1, 5, 2)),
            np.int64([r.track_id]),
        )
        if (s := skin_of(d, 0, h, w, frames[r.frame_index])) is not None:
            masks[r.frame_index] |= s.full(h, w)
    return masks
