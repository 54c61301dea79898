"""The pulse edit where frames are encoded: `PulseApplier` adds each track's planned offsets inside
its skin mask (after the faces are anonymized), measures what it wrote (the skin means of the edited
frames, the squared error for PSNR) and turns it into the report's rows. `readings` is the one way
the before/after figures are read."""
from __future__ import annotations

import json
import math

import numpy as np

from faceveil.models.detections import Detections
from faceveil.pipeline.jobs import PulseEdit
from faceveil.validation.image_quality import psnr_from_mse

CHECKERS = ("chrom", "green", "pos")  # read before and after; the one optimised through is named beside
MIN_SKIN_PX = 20  # a face with fewer skin pixels than this in a frame is neither read nor edited there


def readings(trace: np.ndarray, fps: float) -> dict:
    """{estimator: {"bpm", "snr_db"}} of a skin-mean trace (T,3; NaN rows filled)."""
    from faceveil.models.rppg import create_estimator
    from faceveil.models.rppg.edit import fill_gaps

    x = fill_gaps(trace)
    out = {}
    for name in CHECKERS:
        r = create_estimator(name).read_trace(x, fps)
        out[name] = {"bpm": None if r.bpm is None else round(r.bpm, 2),
                     "snr_db": None if not math.isfinite(r.snr_db) else round(r.snr_db, 2)}
    return out


def skin_of(dets: Detections, j: int, height: int, width: int):
    from faceveil.models.rppg.skin import skin_region

    r = skin_region(dets.landmarks[j], dets.boxes[j], width, height)
    return r if r.n >= MIN_SKIN_PX else None


class PulseApplier:
    """Applies a video's PulseEdit frame by frame, with seeded dither per (frame, track)."""

    def __init__(self, edit: PulseEdit | None, seed: int = 0):
        self.edit, self.seed = edit, seed
        self.after: dict[int, dict[int, np.ndarray]] = {}
        self.sse: dict[int, float] = {}
        self.pixels = 0

    def frames(self) -> set[int]:
        if not self.edit:
            return set()
        return {f for first, d in self.edit.offsets.values() for f in range(first, first + len(d))}

    def _offset(self, tid: int, i: int):
        first, d = self.edit.offsets.get(tid, (0, ()))
        return d[i - first] if first <= i < first + len(d) else None

    def __call__(self, i: int, rgb: np.ndarray, dets: Detections) -> None:
        from faceveil.models.rppg.edit import apply_offset

        if not self.edit:
            return
        h, w = rgb.shape[:2]
        self.pixels = h * w * 3
        for j, tid in enumerate(dets.track_ids.tolist()):
            if (delta := self._offset(tid, i)) is None or (r := skin_of(dets, j, h, w)) is None:
                continue
            win = rgb[r.y0:r.y1, r.x0:r.x1]
            before = win[r.mask].astype(np.float64)
            apply_offset(rgb, r, np.asarray(delta, np.float64), np.random.default_rng((self.seed, i, tid)))
            after = win[r.mask].astype(np.float64)
            self.sse[tid] = self.sse.get(tid, 0.0) + float(((after - before) ** 2).sum())
            self.after.setdefault(tid, {})[i] = after.mean(axis=0)

    def rows(self, media_id: str, run_id: str, fps: float, measured: bool = True) -> list[dict]:
        """The report's rows: before (from the pulse task) and after (measured here on the edited
        frames before encoding; `measured` False: the plan, for segment-encoded videos)."""
        if not self.edit:
            return []
        out = []
        for t in self.edit.tracks:
            tid, first, n = t["track_id"], t["first_frame"], t["n_frames"]
            after = t["planned"]
            if measured and self.after.get(tid):
                trace = np.full((t["last_frame"] - first + 1, 3), np.nan)
                for f, m in self.after[tid].items():
                    trace[f - first] = m
                after = readings(trace, fps)
            mse = self.sse.get(tid, 0.0) / max(self.pixels * n, 1)
            out.append({"media_id": media_id, "run_id": run_id, "track_id": tid, "first_frame": first,
                        "last_frame": t["last_frame"], "n_frames": n, "spec": self.edit.spec,
                        "optimised": t["optimised"], "readings_json": json.dumps({"before": t["before"], "after": after}),
                        "psnr_db": psnr_from_mse(mse) if measured else None,
                        "measured": bool(measured and self.after.get(tid))})
        return out
