"""Identity templates per track: while a video streams by, keep the few best-quality original faces
of each track (size, sharpness, frontality), then embed them: a template (normalised mean) plus the
exemplars. Memory stays bounded: `keep` small crops per track. A template view says how one face is
embedded: "mirror-mean" (the face and its mirror image averaged; what new indexes store, measured
steadier by benchmarks/search.py) or "plain" (one view; indexes written before).

Every template and exemplar carries its face's quality (`face_quality`: size in pixels, sharpness,
frontality), stored in the index so search can rank a small blurred bystander below a clear face of
the person (`ranking_quality` folds the three into one number in [0, 1]; ops/search.py ranks)."""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field

import numpy as np

from faceveil.models.detections import Detections
from faceveil.models.embedders.base import Embedder, frontality, quality


TEMPLATE_VIEWS = ("mirror-mean", "plain")
DEFAULT_VIEW = "mirror-mean"
QUALITY_FIELDS = ("face_px", "sharpness", "frontality")
SHARP_PX = 64  # sharpness is measured on the face resampled to this size, whatever its own size
SHARP_HALF = 0.1  # the Laplacian-to-contrast ratio that counts as sharpness 0.5
FULL_PX = 80.0  # a face this big (px) or bigger has nothing to lose to its size


def face_quality(rgb: np.ndarray, dets: Detections) -> dict[str, np.ndarray]:
    """{name: (N,) float32} for the faces `dets` in `rgb`, what says how well a face can be told
    apart (measured when templates are made, stored in the index; models no identity):
    face_px: the box's size in pixels (geometric mean of width and height);
    sharpness: variance of the Laplacian of the grey face box resampled to SHARP_PX x SHARP_PX (so
    the figure does not depend on the face's own size: a small face is upsampled, and what it lacks
    shows), divided by the grey variance of that crop (so contrast and lighting do not count),
    mapped to [0, 1) as r / (r + SHARP_HALF); 0 for a box with no pixels;
    frontality: in [0, 1] from the 5 landmarks (yaw and roll; embedders.base.frontality)."""
    import cv2

    n = len(dets)
    sharp = np.zeros(n, np.float32)
    h, w = rgb.shape[:2]
    for i, (x1, y1, x2, y2) in enumerate(np.round(dets.boxes).astype(int) if n else []):
        x1, y1, x2, y2 = max(x1, 0), max(y1, 0), min(x2, w), min(y2, h)
        if x2 - x1 < 2 or y2 - y1 < 2:
            continue
        grey = cv2.cvtColor(np.ascontiguousarray(rgb[y1:y2, x1:x2]), cv2.COLOR_RGB2GRAY).astype(np.float64)
        up = min(grey.shape) < SHARP_PX
        grey = cv2.resize(grey, (SHARP_PX, SHARP_PX), interpolation=cv2.INTER_LINEAR if up else cv2.INTER_AREA)
        r = cv2.Laplacian(grey, cv2.CV_64F).var() / max(float(grey.var()), 1e-6)
        sharp[i] = r / (r + SHARP_HALF)
    return {
        "face_px": dets.sizes.astype(np.float32),
        "sharpness": sharp,
        "frontality": frontality(dets.landmarks).astype(np.float32) if n else np.zeros(0, np.float32),
    }


def ranking_quality(face_px, sharpness, frontal) -> np.ndarray:
    """One quality in [0, 1] per face from its stored measures (arrays; NaN where any is unknown,
    as for rows of an index written before quality was stored): size min(face_px / FULL_PX, 1)
    times sharpness times (0.5 + 0.5 frontality): a turned head costs at most half, since a clear
    profile of the person is still the person. Measured by benchmarks/search.py: the clear photos
    of faces/ score 0.33-0.86 (median 0.75), bystanders pasted at 12-40 px and blurred 0.003-0.38
    (median 0.07)."""
    px, sh, fr = (np.asarray(a, np.float64) for a in (face_px, sharpness, frontal))
    return np.clip(px / FULL_PX, 0, 1) * np.clip(sh, 0, 1) * (0.5 + 0.5 * np.clip(fr, 0, 1))


def identity_vectors(embedder: Embedder, rgb: np.ndarray, dets: Detections, view: str = DEFAULT_VIEW) -> np.ndarray:
    """(N, dim) unit vectors of the faces `dets` as the index stores and probes them (`view`)."""
    if view == "mirror-mean":
        return embedder.embed_mirror_mean(rgb, dets)
    if view == "plain":
        return embedder.embed(rgb, dets)
    raise ValueError(f"unknown template view {view!r}; one of {', '.join(TEMPLATE_VIEWS)}")


@dataclass(order=True)
class _Kept:
    quality: float
    frame: int
    crop: np.ndarray = field(compare=False)
    det: Detections = field(compare=False)
    measures: dict = field(compare=False, default_factory=dict)  # face_quality's, for the index


class TrackFaces:
    """Offer every frame's detected (not tracker-filled) faces; `templates` embeds the best ones.
    Tracks in `skip` are left out."""

    def __init__(self, keep: int = 5, min_quality: float = 0.02, skip=()):
        self.keep, self.min_quality, self.skip = keep, min_quality, frozenset(skip)
        self._best: dict[int, list[_Kept]] = {}

    def offer(self, frame: int, rgb: np.ndarray, dets: Detections) -> None:
        real = dets[~dets.filled & (dets.track_ids >= 0)] if len(dets) else dets
        if not len(real):
            return
        q = quality(rgb, real)
        fq = face_quality(rgb, real)
        h, w = rgb.shape[:2]
        for j in range(len(real)):
            if int(real.track_ids[j]) in self.skip:  # a forgotten person: never indexed again
                continue
            heap = self._best.setdefault(int(real.track_ids[j]), [])
            if q[j] < self.min_quality or (len(heap) >= self.keep and q[j] <= heap[0].quality):
                continue
            x1, y1, x2, y2 = real.boxes[j]
            m = 0.5 * max(x2 - x1, y2 - y1)  # margin for the embedder's own alignment
            cx1, cy1 = int(max(0, x1 - m)), int(max(0, y1 - m))
            cx2, cy2 = int(min(w, x2 + m)), int(min(h, y2 + m))
            crop = rgb[cy1:cy2, cx1:cx2].copy()
            kept = _Kept(
                float(q[j]), frame, crop, real[[j]].translate(-cx1, -cy1), {k: float(v[j]) for k, v in fq.items()}
            )
            (heapq.heapreplace if len(heap) >= self.keep else heapq.heappush)(heap, kept)

    def templates(self, embedder: Embedder, view: str = DEFAULT_VIEW) -> list[dict]:
        """[{track_id, kind: 'template'|'exemplar', vector (dim,), quality, frame, face_px, sharpness,
        frontality}] per track (a template's face measures: the mean of its exemplars')."""
        out = []
        for track, heap in sorted(self._best.items()):
            if not heap:  # every face of this track was too small or blurred to tell who it is
                continue
            kept = sorted(heap, reverse=True)
            vecs = np.concatenate([identity_vectors(embedder, k.crop, k.det, view) for k in kept])
            mean = vecs.mean(0)
            out.append(
                {
                    "track_id": track,
                    "kind": "template",
                    "vector": mean / max(np.linalg.norm(mean), 1e-12),
                    "quality": float(np.mean([k.quality for k in kept])),
                    "frame": kept[0].frame,
                    **{f: float(np.mean([k.measures[f] for k in kept])) for f in QUALITY_FIELDS},
                }
            )
            out.extend(
                {
                    "track_id": track,
                    "kind": "exemplar",
                    "vector": v,
                    "quality": k.quality,
                    "frame": k.frame,
                    **k.measures,
                }
                for v, k in zip(vecs, kept)
            )
        return out
