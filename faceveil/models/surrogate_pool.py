"""The replacement's pool of generated faces (seeded: the same on every run), how a real face is paired
with one of them (nearest in attribute space among those unlike every real person), and the record of
the surrogate made from it (models/replace)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import cv2
import numpy as np

from faceveil.models.detections import Detections
from faceveil.models.face_attributes import FaceAttributes, face_attributes


@dataclass
class PoolFace:
    latent: "object"  # torch tensor (latent_dim,) on the CPU
    image: np.ndarray  # (R, R, 3) uint8
    landmarks: np.ndarray  # (5, 2) in the image's pixels
    attributes: FaceAttributes
    identity: np.ndarray  # (128,) unit vector


def to_uint8(images) -> np.ndarray:
    """(N, R, R, 3) uint8 of (N, 3, R, R) float images in [0, 1]."""
    a = images.detach().clamp(0, 1).mul(255).add(0.5).to("cpu").numpy().astype(np.uint8)
    return np.ascontiguousarray(a.transpose(0, 2, 3, 1))


def canvas(image: np.ndarray) -> tuple[np.ndarray, float, int]:
    """A generated face resized to 128 px, in a replicated border (CenterFace needs context around a
    face), with the scale and border it got."""
    r = image.shape[0]
    s = 128.0 / r
    size = int(round(r * s))
    big = cv2.resize(image, (size, size), interpolation=cv2.INTER_CUBIC if s > 1 else cv2.INTER_AREA)
    pad = 64
    return cv2.copyMakeBorder(big, pad, pad, pad, pad, cv2.BORDER_REPLICATE), size / r, pad


def generated_landmarks(detector, image: np.ndarray) -> tuple[np.ndarray, float, np.ndarray] | None:
    """(landmarks (5, 2), detector score, box xyxy) of the face `detector` (CenterFace) finds in a
    generated image (in its pixels), the most central of the surest; None when it finds none."""
    big, s, pad = canvas(image)
    dets = detector.detect(big)
    if not len(dets):
        return None
    c = np.array(big.shape[1::-1], np.float32) / 2
    centres = (dets.boxes[:, :2] + dets.boxes[:, 2:]) / 2
    j = int(np.argmax(dets.scores - 0.01 * np.linalg.norm(centres - c, axis=1) / s))
    lm = dets.landmarks[j]
    if np.isnan(lm).any():
        return None
    return (lm - pad) / s, float(dets.scores[j]), (dets.boxes[j] - pad) / s


def pool_face(detector, embedder, latent, image: np.ndarray, min_score: float = 0.4) -> PoolFace | None:
    """A generated face with its landmarks, attributes and identity; None when the detector does not
    find it at `min_score`."""
    found = generated_landmarks(detector, image)
    if found is None or found[1] < min_score:
        return None
    lm, _, box = found
    big, s, pad = canvas(image)
    ident = embedder.embed(big, Detections((box * s + pad)[None], [1.0]))[0]  # as real faces are: in CenterFace's box
    return PoolFace(latent.detach().cpu(), image, lm.astype(np.float32), face_attributes(big, lm * s + pad), ident)


def build_pool(generator, detector, embedder, size: int, seed: int) -> list[PoolFace]:
    """The `size` faces generated from `seed` that the detector finds (a RuntimeError when none)."""
    import torch

    z = generator.sample_latents(size, seed)
    faces = []
    for i in range(0, len(z), 8):  # a few at a time: big generators are big
        with torch.no_grad():
            images = to_uint8(generator.generate(z[i : i + 8]))
        faces += [pool_face(detector, embedder, z[i + k], img) for k, img in enumerate(images)]
    pool = [f for f in faces if f is not None]
    if not pool:
        raise RuntimeError(f"none of the {size} generated faces was found by the detector")
    return pool


def ranking(
    pool: list[PoolFace], attributes: FaceAttributes, identities: np.ndarray, margin: float, avoid=()
) -> list[int]:
    """Pool indices, best partner first: those whose identity cosine to every row of `identities` (the
    real people: this one first) is below `margin` and not in `avoid`, nearest in attribute space
    first; then the rest of those not in `avoid`, least like the real people first."""
    vec = np.stack([f.attributes.vector() for f in pool])
    ids = np.stack([f.identity for f in pool])
    reals = np.asarray(identities, np.float32).reshape(-1, ids.shape[1])
    sims = (ids @ reals.T).max(1) if len(reals) else np.full(len(pool), -1.0, np.float32)
    avoid = set(avoid)
    free = np.array([i not in avoid for i in range(len(pool))])
    if not free.any():
        free[:] = True
    ok = free & (sims < margin)
    dist = np.linalg.norm(np.nan_to_num(vec - attributes.vector()), axis=1)
    near = np.flatnonzero(ok)[np.argsort(dist[ok], kind="stable")]
    rest = np.flatnonzero(free & ~ok)[np.argsort(sims[free & ~ok], kind="stable")]
    return [int(i) for i in np.concatenate([near, rest])]


@dataclass
class Surrogate:
    """The face that replaces one person: its latent, image and landmarks, and how it scored put
    back into the frame it was made for."""

    latent: "object"
    image: np.ndarray
    landmarks: np.ndarray
    pool_index: int
    seed: int
    cosine: float = float("nan")  # identity cosine to the original, as put back
    cosine_start: float = float("nan")  # the paired pool face's, before optimisation
    pose_error: float = float("nan")  # mean |yaw, pitch, roll| difference, degrees
    delta_e: float = float("nan")  # skin colour difference, CIEDE2000
    det_score: float = float("nan")  # CenterFace's score of the face put back
    evals: int = 0
    seconds: float = 0.0  # wall-clock time to make it
    cpu_seconds: float = 0.0  # CPU time of this process meanwhile (all its threads)
    history: list = field(default_factory=list)
    method: str = "replace"  # its step of models/fallback.FALLBACKS ("solid": no face, the region filled)
    judged: bool = False  # its identity cosine measured in the whole frame it was made for (fallback.judge)


def track_seed(*parts) -> int:
    """A 63-bit seed from the parts (pool seed, media, track): the same on every run and machine."""
    return int.from_bytes(hashlib.sha256("|".join(map(str, parts)).encode()).digest()[:8], "big") >> 1
