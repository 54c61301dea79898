"""Identity templates per track: while a video streams by, keep the few best-quality original faces
of each track (size, sharpness, frontality), then embed them: a template (normalised mean) plus the
exemplars. Memory stays bounded: `keep` small crops per track. A template view says how one face is
embedded: "mirror-mean" (the face and its mirror image averaged; what new indexes store, measured
steadier by benchmarks/search.py) or "plain" (one view; indexes written before)."""
from __future__ import annotations

import heapq
from dataclasses import dataclass, field

import numpy as np

from faceveil.models.detections import Detections
from faceveil.models.embedders.base import Embedder, quality


TEMPLATE_VIEWS = ("mirror-mean", "plain")
DEFAULT_VIEW = "mirror-mean"


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
            kept = _Kept(float(q[j]), frame, crop, real[[j]].translate(-cx1, -cy1))
            (heapq.heapreplace if len(heap) >= self.keep else heapq.heappush)(heap, kept)

    def templates(self, embedder: Embedder, view: str = DEFAULT_VIEW) -> list[dict]:
        """[{track_id, kind: 'template'|'exemplar', vector (dim,), quality, frame}] per track."""
        out = []
        for track, heap in sorted(self._best.items()):
            if not heap:  # every face of this track was too small or blurred to tell who it is
                continue
            kept = sorted(heap, reverse=True)
            vecs = np.concatenate([identity_vectors(embedder, k.crop, k.det, view) for k in kept])
            mean = vecs.mean(0)
            out.append({"track_id": track, "kind": "template", "vector": mean / max(np.linalg.norm(mean), 1e-12),
                        "quality": float(np.mean([k.quality for k in kept])), "frame": kept[0].frame})
            out.extend({"track_id": track, "kind": "exemplar", "vector": v, "quality": k.quality, "frame": k.frame}
                       for v, k in zip(vecs, kept))
        return out
