"""IoU tracking with motion prediction (ByteTrack-style two-stage association) and gap filling.

Works offline on the detections of one media (boxes only, cheap), so a track can be filled both
ways: gaps inside a track are interpolated and every track is extended `extend` frames before its
first and after its last detection along its motion. Detections may come from every frame or from
every k-th frame (`extend` and `max_gap` are in frames and should exceed k).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable

import numpy as np

from faceveil.models.detections import Detections, iou_matrix


@dataclass(frozen=True)
class TrackerSettings:
    iou_threshold: float = 0.2
    high_score: float = 0.5  # detections at or above it are associated first (ByteTrack)
    start_score: float = 0.0  # a track needs one detection at or above it (hysteresis) ...
    confirm_hits: int = 3  # ... or this many detections below it: a weak face seen again and again is a face
    max_gap: int = 10  # frames a face may go undetected inside one track
    extend: int = 4  # frames covered before a track's first and after its last detection
    velocity_smoothing: float = 0.6  # weight of the newest velocity in the running estimate


@dataclass
class _Track:
    id: int
    frames: list[int] = field(default_factory=list)
    dets: list[Detections] = field(default_factory=list)  # one row each
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(4, np.float32))

    def predict(self, frame: int) -> np.ndarray:
        return self.dets[-1].boxes[0] + self.velocity * (frame - self.frames[-1])

    def add(self, frame: int, det: Detections, smoothing: float) -> None:
        if self.frames:
            v = (det.boxes[0] - self.dets[-1].boxes[0]) / (frame - self.frames[-1])
            self.velocity = v if len(self.frames) == 1 else smoothing * v + (1 - smoothing) * self.velocity
        self.frames.append(frame)
        self.dets.append(det)


def _similarity(pred: np.ndarray, boxes: np.ndarray, iou_threshold: float) -> np.ndarray:
    """IoU of predicted and detected boxes, plus a centre-distance term so that a fast face whose
    track has no velocity yet (IoU near 0) still matches a close detection of similar size.
    Pairs that should not match get -1."""
    iou = iou_matrix(pred, boxes)
    if iou.size == 0:
        return iou
    cp, cb = (pred[:, :2] + pred[:, 2:]) / 2, (boxes[:, :2] + boxes[:, 2:]) / 2
    sp = np.sqrt(np.prod(np.clip(pred[:, 2:] - pred[:, :2], 1e-3, None), 1))
    sb = np.sqrt(np.prod(np.clip(boxes[:, 2:] - boxes[:, :2], 1e-3, None), 1))
    dist = np.linalg.norm(cp[:, None] - cb[None], axis=2) / np.maximum(sp[:, None], sb[None])
    ratio = np.maximum(sp[:, None], sb[None]) / np.minimum(sp[:, None], sb[None])
    close = (dist < 1.0) & (ratio < 1.6)
    sim = iou + 0.5 * np.clip(1 - dist, 0, None) * close
    return np.where((iou >= iou_threshold) | close, sim, -1.0)


def _match(sim: np.ndarray) -> list[tuple[int, int]]:
    """Optimal one-to-one pairs (row, col) among those allowed (similarity >= 0)."""
    if sim.size == 0:
        return []
    from scipy.optimize import linear_sum_assignment

    rows, cols = linear_sum_assignment(-sim)
    return [(r, c) for r, c in zip(rows, cols) if sim[r, c] >= 0]


def associate(sampled: Iterable[tuple[int, Detections]], settings: TrackerSettings = TrackerSettings()) -> list[_Track]:
    """Links detections of successive sampled frames (in frame order) into tracks."""
    tracks: list[_Track] = []
    active: list[_Track] = []  # the tracks still within max_gap of the frame (a track past it never returns)
    for frame, dets in sampled:
        active = [t for t in active if frame - t.frames[-1] - 1 <= settings.max_gap]
        preds = np.array([t.predict(frame) for t in active], np.float32).reshape(-1, 4)
        free_tracks = list(range(len(active)))
        free_dets = list(range(len(dets)))
        for stage_dets in (
            [i for i in free_dets if dets.scores[i] >= settings.high_score],
            [i for i in free_dets if dets.scores[i] < settings.high_score],
        ):
            pairs = _match(_similarity(preds[free_tracks], dets.boxes[stage_dets], settings.iou_threshold))
            for r, c in pairs:
                active[free_tracks[r]].add(frame, dets[[stage_dets[c]]], settings.velocity_smoothing)
            used_t = {free_tracks[r] for r, _ in pairs}
            used_d = {stage_dets[c] for _, c in pairs}
            free_tracks = [t for t in free_tracks if t not in used_t]
            free_dets = [d for d in free_dets if d not in used_d]
        for i in free_dets:  # every unmatched face starts a track: nothing found is left unprotected
            t = _Track(id=len(tracks) + 1)
            t.add(frame, dets[[i]], settings.velocity_smoothing)
            tracks.append(t)
            active.append(t)
    return [t for t in tracks if _confirmed(t, settings)]


def _confirmed(track: _Track, settings: TrackerSettings) -> bool:
    """A track is kept when one of its detections reaches start_score, or when it has confirm_hits
    weaker ones: a lone weak false alarm masks nothing, a face whose score stays just under the
    threshold is masked all the same."""
    if len(track.frames) >= settings.confirm_hits:
        return True
    return any(float(d.scores.max()) >= settings.start_score for d in track.dets)


def _centre_motion(frames: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Per detection, the box-centre velocity (px/frame) from its neighbours in the track."""
    if len(frames) < 2:
        return np.zeros((len(frames), 2), np.float32)
    centres = (boxes[:, :2] + boxes[:, 2:]) / 2
    return np.stack([np.gradient(centres[:, k], frames) for k in range(2)], 1).astype(np.float32)


def fill_track(track: _Track, n_frames: int, width: int, height: int, extend: int) -> dict[int, Detections]:
    """Every frame the track covers: detections as found, gaps interpolated, both ends extended."""
    frames, det = _filled(track, n_frames, width, height, extend)
    return {int(f): det[[k]] for k, f in enumerate(frames)}


def _filled(track: _Track, n_frames: int, width: int, height: int, extend: int) -> tuple[np.ndarray, Detections]:
    """`fill_track` as arrays: the frames the track covers, in order, and one row of Detections each
    (found rows as found; gap rows interpolated between their neighbours, scored at the lower of
    the two; end rows moved along the motion, clipped, and stopped where one leaves the frame)."""
    found = np.asarray(track.frames, np.int64)
    det = Detections.concat(track.dets)
    det.track_ids[:] = track.id
    det.motion = _centre_motion(found, det.boxes)
    velocity = (
        np.vstack([np.gradient(det.boxes[:, k], found) for k in range(4)]).T.astype(np.float32)
        if len(found) > 1
        else np.zeros((1, 4), np.float32)
    )
    inside = np.arange(found[0], found[-1] + 1)
    j = np.searchsorted(found, inside, side="right") - 1  # the detection at or before each frame
    nxt = np.minimum(j + 1, len(found) - 1)
    span = np.maximum(found[nxt] - found[j], 1)
    a = ((inside - found[j]) / span).astype(np.float32)
    mix = lambda x: (1 - a).reshape(-1, *[1] * (x.ndim - 1)) * x[j] + a.reshape(-1, *[1] * (x.ndim - 1)) * x[nxt]  # noqa: E731
    gap = inside != found[j]
    body = Detections(
        mix(det.boxes),
        np.where(gap, np.minimum(det.scores[j], det.scores[nxt]), det.scores[j]),
        mix(det.landmarks),
        det.track_ids[j],
        gap,
        mix(det.motion),
    )
    parts, frames = [], []
    for end, step in ((0, -1), (len(found) - 1, 1)):  # extend along the motion at each end
        d = np.arange(1, extend + 1)
        t = found[end] + step * d
        d, t = d[(t >= 0) & (t < n_frames)], t[(t >= 0) & (t < n_frames)]
        ext = det[np.full(len(d), end)]
        ext.boxes = ext.boxes + velocity[end] * (step * d)[:, None]
        ext.landmarks = ext.landmarks + ext.motion[:, None, :] * (step * d)[:, None, None]
        ext.filled[:] = True
        b = ext.boxes.copy()
        b[:, [0, 2]] = b[:, [0, 2]].clip(0, width)
        b[:, [1, 3]] = b[:, [1, 3]].clip(0, height)
        ext.boxes = b
        stop = np.flatnonzero((b[:, 2] <= b[:, 0]) | (b[:, 3] <= b[:, 1]))
        keep = stop[0] if len(stop) else len(d)
        parts.append(ext[:keep][::-1] if step < 0 else ext[:keep])
        frames.append(t[:keep][::-1] if step < 0 else t[:keep])
    return (np.concatenate([frames[0], inside, frames[1]]), Detections.concat([parts[0], body, parts[1]]))


def track_media(
    sampled: Iterable[tuple[int, Detections]],
    n_frames: int,
    width: int,
    height: int,
    settings: TrackerSettings = TrackerSettings(),
) -> tuple[dict[int, Detections], list[_Track]]:
    """Frame index -> all faces to anonymize in that frame (track ids set), and the tracks."""
    tracks = associate(sampled, settings)
    if not tracks:
        return {}, tracks
    filled = [_filled(t, n_frames, width, height, settings.extend) for t in tracks]
    frames = np.concatenate([f for f, _ in filled])
    rows = Detections.concat([d for _, d in filled])
    order = np.argsort(frames, kind="stable")  # by frame, then in track order
    frames, rows = frames[order], rows[order]
    starts = np.flatnonzero(np.r_[True, frames[1:] != frames[:-1]])
    ends = np.r_[starts[1:], len(frames)]
    return {int(frames[a]): rows[a:b] for a, b in zip(starts, ends)}, tracks
