"""How real replaced faces look, measured offline.

- `frechet_distance`: the Fréchet distance between two sets of face embeddings (Gaussians fitted to
  each: mean and covariance), as FID does with Inception features. The space is dlib's 128-d ResNet
  face descriptor (models/embedders "dlib-resnet", unit vectors): the only face-trained embedding that
  ships offline. `DetectorFeatures` gives a second space, CenterFace's backbone (MobileNetV2's last
  320-channel map, averaged over a face crop). Compare a set with real faces of *other* people
  (`disjoint_reference`): against the faces' own originals the distance would mix the identity change
  (which replacement is for) into realism. With fewer faces than dimensions the estimate is biased
  upwards, more so the smaller the sets: compare figures at one set size only, beside the floor
  (real faces against the reference, as many of them).
- `sharpness_ratio`: a no-reference figure per face: the variance of the Laplacian (fine detail,
  sensor noise, JPEG grain) inside the face ellipse over that in a ring of the surrounding photo, at
  the photo's own pixel scale. About 1 for a real face (0.3-6 on ../shared/data/faces, median 1.1);
  far below for a face blurred or upscaled from a small generator (median 0.01-0.04 there)."""

from __future__ import annotations

import cv2
import numpy as np

from faceveil.models.face_attributes import eye_distance
from faceveil.models.put_back import face_mask

SOFT_BELOW = 0.25  # a face with less than a quarter of its surroundings' fine detail reads as soft
FEATURE_NODE = "507"  # CenterFace's graph: the backbone's last (320-channel, stride-32) feature map
FEATURE_CROP = 128  # side of the face crop CenterFace's features are read from


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """|mu_a - mu_b|^2 + tr(S_a + S_b - 2 (S_a S_b)^1/2) of the (n, d) rows of `a` and `b`. With fewer
    rows than dimensions the covariances are rank-deficient: the matrix square root is taken as
    S_a^1/2 S_b S_a^1/2 (symmetric, positive semi-definite) through eigendecompositions, negative
    round-off eigenvalues clipped to 0, so no ridge is needed; symmetric in `a` and `b` up to round-off."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1] or min(len(a), len(b)) < 2:
        raise ValueError(f"needs two sets of at least 2 vectors of one dimension, got {a.shape} and {b.shape}")
    sa, sb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    w, v = np.linalg.eigh(sa)
    root_a = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    cross = np.sqrt(np.clip(np.linalg.eigvalsh(root_a @ sb @ root_a), 0, None)).sum()
    return float(max(0.0, np.sum((a.mean(0) - b.mean(0)) ** 2) + np.trace(sa) + np.trace(sb) - 2 * cross))


def disjoint_reference(groups, test) -> np.ndarray:
    """(bool mask) the rows usable as a real reference for the rows in `test`: those of no group
    (person, surrogate) that a test row belongs to."""
    groups, test = np.asarray(groups), np.asarray(test, bool)
    return ~np.isin(groups, groups[test])


MASK_EYES = 32.0  # the masks are drawn where the eye distance is this (pixels; from 1.5x this), then scaled up


def _regions(shape: tuple[int, int], lm: np.ndarray, changed=None) -> tuple[np.ndarray, np.ndarray]:
    """(inside, ring) masks: the face ellipse (models/put_back's, where a new face goes) shrunk by
    0.15 eye distances, and the band 0.1 to 0.8 eye distances outside it and outside the xyxy box
    `changed` (the region a method rewrote: a blur's or a fill's ring would be rewritten too). Drawn at
    a scale where the eyes are MASK_EYES apart (a large face's dilations would take seconds) and resized."""
    d = eye_distance(lm)
    if d > 1.5 * MASK_EYES:
        f = MASK_EYES / d
        small = (max(1, int(round(shape[0] * f))), max(1, int(round(shape[1] * f))))
        c = None if changed is None else np.asarray(changed, np.float64) * f
        masks = _regions(small, np.asarray(lm, np.float64) * f, c)
        return tuple(
            cv2.resize(m.astype(np.uint8), (shape[1], shape[0]), interpolation=cv2.INTER_NEAREST).astype(bool)
            for m in masks
        )
    disk = lambda r: cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))  # noqa: E731
    mask = face_mask(shape, lm).astype(np.uint8)
    inside = cv2.erode(mask, disk(max(1, int(0.15 * d)))).astype(bool)
    if changed is not None:
        x1, y1, x2, y2 = (int(round(v)) for v in changed)
        mask[max(0, y1) : max(0, y2), max(0, x1) : max(0, x2)] = 1
    ring = cv2.dilate(mask, disk(max(2, int(0.8 * d)))).astype(bool) & ~cv2.dilate(
        mask, disk(max(1, int(0.1 * d)))
    ).astype(bool)
    return inside, ring


def sharpness_ratio(rgb: np.ndarray, landmarks: np.ndarray, changed=None, min_pixels: int = 20) -> float:
    """(var Laplacian inside the face ellipse + 1) / (var Laplacian in the ring around it + 1), in
    grey levels, at the photo's resolution (see the module docstring); `changed`: the xyxy box a
    method rewrote, which the ring stays outside of (replace rewrites the ellipse only). NaN without
    landmarks or when either region has under `min_pixels` pixels in the frame."""
    lm = np.asarray(landmarks, np.float64).reshape(5, 2)
    if not np.isfinite(lm).all() or eye_distance(lm) < 1:
        return float("nan")
    h, w = rgb.shape[:2]
    pad = 3 * eye_distance(lm)  # the ellipse and its ring lie within this of the landmarks (and the box)
    lo, hi = lm.min(0) - pad, lm.max(0) + pad
    if changed is not None:
        lo, hi = np.minimum(lo, np.asarray(changed[:2]) - pad / 3), np.maximum(hi, np.asarray(changed[2:]) + pad / 3)
    x0, y0 = (int(max(0, v)) for v in lo)
    x1, y1 = (int(min(m, v)) for m, v in zip((w, h), hi))
    if x1 - x0 < 3 or y1 - y0 < 3:
        return float("nan")
    grey = cv2.cvtColor(np.ascontiguousarray(rgb[y0:y1, x0:x1]), cv2.COLOR_RGB2GRAY).astype(np.float32)
    inside, ring = _regions(
        grey.shape, lm - [x0, y0], None if changed is None else np.asarray(changed, float) - [x0, y0, x0, y0]
    )
    lap = cv2.Laplacian(grey, cv2.CV_32F)
    edge = np.zeros_like(inside)  # the Laplacian at the crop's border sees a reflected frame: left out
    edge[1:-1, 1:-1] = True
    inside, ring = inside & edge, ring & edge
    if inside.sum() < min_pixels or ring.sum() < min_pixels:
        return float("nan")
    return float((lap[inside].var() + 1.0) / (lap[ring].var() + 1.0))


def sharpness_summary(ratios) -> dict:
    """{"median", "soft_share" (below SOFT_BELOW), "faces"} of per-face sharpness ratios (NaN left out)."""
    r = np.asarray(ratios, np.float64)
    r = r[np.isfinite(r)]
    if not len(r):
        return {"median": None, "soft_share": None, "faces": 0}
    return {"median": float(np.median(r)), "soft_share": float((r < SOFT_BELOW).mean()), "faces": int(len(r))}


class DetectorFeatures:
    """CenterFace's backbone features of face crops: the shipped ONNX graph with FEATURE_NODE made an
    output, run on a square crop 1.3x the face box resized to FEATURE_CROP px (the detector's input
    is raw RGB 0-255), averaged over the map: one 320-d vector per face."""

    def __init__(self, threads: int = 0):
        import onnx
        import onnxruntime as ort

        from faceveil.models.detectors.centerface import _graph, default_weights

        model = onnx.load_from_string(_graph(default_weights()))
        model.graph.output.append(onnx.helper.make_tensor_value_info(FEATURE_NODE, onnx.TensorProto.FLOAT, None))
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        if threads:
            opts.intra_op_num_threads = threads
        self._sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])

    def features(self, rgb: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        """(N, 320) float32, one row per xyxy box."""
        crops = [face_crop(rgb, b, FEATURE_CROP) for b in np.asarray(boxes, np.float64).reshape(-1, 4)]
        if not crops:
            return np.zeros((0, 320), np.float32)
        blob = np.ascontiguousarray(np.stack(crops).transpose(0, 3, 1, 2), dtype=np.float32)
        return self._sess.run([FEATURE_NODE], {"input.1": blob})[0].mean((2, 3)).astype(np.float32)


def face_crop(rgb: np.ndarray, box, size: int, scale: float = 1.3) -> np.ndarray:
    """A square crop `scale` times the xyxy box's longer side around its centre (clipped to the frame,
    so faces at the border come out stretched), resized to `size` px."""
    h, w = rgb.shape[:2]
    x1, y1, x2, y2 = np.asarray(box, np.float64)
    cx, cy, side = (x1 + x2) / 2, (y1 + y2) / 2, scale * max(x2 - x1, y2 - y1, 1.0)
    a, b = int(max(0, cx - side / 2)), int(max(0, cy - side / 2))
    c, d = int(min(w, max(a + 1, cx + side / 2))), int(min(h, max(b + 1, cy + side / 2)))
    crop = np.ascontiguousarray(rgb[b:d, a:c])
    return cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA if crop.shape[0] > size else cv2.INTER_LINEAR)
