"""The pulse edit where frames are encoded: `PulseApplier` adds each track's planned offsets inside
its skin mask, part by part (after the faces are anonymized), measures what it wrote (the skin's and
every attacker region's means on the edited frames, the squared error for PSNR) and turns it into the
report's rows. `skin_of` is the one way a face's skin is found (the face mesh where it sees a face,
the landmark polygons otherwise), `sample` the one way a face is read, `readings` the one way the
before/after figures are read and `verdict` the one pass/fail rule."""

from __future__ import annotations

import json
import math

import numpy as np

from faceveil.models.detections import Detections
from faceveil.pipeline.jobs import PulseEdit
from faceveil.validation.image_quality import psnr_from_mse

CHECKERS = ("chrom", "green", "pos")  # read before and after; the one optimised through is named beside
MIN_SKIN_PX = 20  # a face with fewer skin pixels than this in a frame is neither read nor edited there
MIN_MESH_FACE = 40  # px: smaller faces take the landmark polygons (the mesh needs some detail)
MESH_PRESENCE = 0.5  # the mesh's face-presence score below which its points are not trusted
SCRUB_MAX_SNR_DB = 3.0  # after scrub, no region may show a heart-rate peak above this
TARGET_TOLERANCE_BPM = 3.0  # after target:BPM, every region must read BPM within this


def readings(trace: np.ndarray, fps: float) -> dict:
    """{estimator: {"bpm", "snr_db"}} of a skin-mean trace (T,3; NaN rows filled)."""
    from faceveil.models.rppg import create_estimator
    from faceveil.models.rppg.edit import fill_gaps

    x = fill_gaps(trace)
    out = {}
    for name in CHECKERS:
        r = create_estimator(name).read_trace(x, fps)
        out[name] = {
            "bpm": None if r.bpm is None else round(r.bpm, 2),
            "snr_db": None if not math.isfinite(r.snr_db) else round(r.snr_db, 2),
        }
    return out


def verdict(spec: str, regions: dict, optimised: str = "pos") -> bool | None:
    """Whether no region gives away a heart rate the edit did not put there (`regions`: {region:
    {"before": readings, "after": readings}}). A reading "shows" a rate when its peak is above
    SCRUB_MAX_SNR_DB. After scrub no estimator shows one in any region. After target:BPM the mask
    read through the estimator the edit was optimised through (`optimised`) gives BPM, and every
    reading that shows a rate gives BPM (within TARGET_TOLERANCE_BPM): none still shows the rate it
    read before (a region without skin, a collar where the neck would be, shows nothing and gives
    nothing away). None: nothing was read."""
    pairs = [
        (name, n, (per.get("before") or {}).get(n), r)
        for name, per in regions.items()
        for n, r in ((per or {}).get("after") or {}).items()
    ]
    if not pairs:
        return None
    shows = lambda r: bool(r) and r["bpm"] is not None and r["snr_db"] is not None and r["snr_db"] > SCRUB_MAX_SNR_DB  # noqa: E731
    if spec == "scrub":
        return not any(shows(r) for *_, r in pairs)
    bpm = float(spec.split(":", 1)[1])
    near = lambda r, x: bool(r) and r["bpm"] is not None and abs(r["bpm"] - x) <= TARGET_TOLERANCE_BPM  # noqa: E731
    mask = (regions.get("mask") or {}).get("after") or {}
    return near(mask.get(optimised), bpm) and all(near(r, bpm) for *_, r in pairs if shows(r))


_MESH: list = []


def _mesh():
    """The face mesh, loaded once per process; None where its model is not installed."""
    if not _MESH:
        from faceveil.models.face_mesh import FaceMesh, FaceMeshUnavailable

        try:
            mesh = FaceMesh()
            mesh.points(np.zeros((64, 64, 3), np.uint8), np.float32([8, 8, 56, 56]), np.full((5, 2), np.nan))
        except FaceMeshUnavailable:
            mesh = None
        _MESH.append(mesh)
    return _MESH[0]


def skin_of(dets: Detections, j: int, height: int, width: int, rgb: np.ndarray | None = None):
    """The skin of face `j` (a skin.SkinRegion; None when it has under MIN_SKIN_PX pixels): from the
    face mesh on `rgb` where the face is large enough and the mesh sees it, else the landmark polygons."""
    from faceveil.models.rppg.skin import dense_skin_region, skin_region

    box, lm = dets.boxes[j], dets.landmarks[j]
    r = None
    if rgb is not None and min(box[2] - box[0], box[3] - box[1]) >= MIN_MESH_FACE and (mesh := _mesh()) is not None:
        points, presence = mesh.points(rgb, box, lm)
        if presence >= MESH_PRESENCE:
            r = dense_skin_region(points, lm, box, rgb)
    if r is None or r.n < MIN_SKIN_PX:
        r = skin_region(lm, box, width, height)
    return r if r.n >= MIN_SKIN_PX else None


def sample(rgb: np.ndarray, dets: Detections, j: int, region) -> dict[str, np.ndarray]:
    """What the checks read of face `j` in this frame: the mean RGB of its skin ("mask") and of every
    attacker region (regions.REGIONS)."""
    from faceveil.models.rppg.regions import region_means

    return {"mask": region.mean(rgb), **region_means(rgb, dets.boxes[j], dets.landmarks[j])}


def region_readings(samples: dict[int, dict], first: int, last: int, fps: float) -> dict:
    """{region: readings} of one track's per-frame samples (frame -> sample), frames first..last."""
    from faceveil.models.rppg.regions import REGIONS

    out = {}
    for name in REGIONS:
        trace = np.full((last - first + 1, 3), np.nan)
        for f, smp in samples.items():
            trace[f - first] = smp[name]
        if np.isfinite(trace).all(axis=1).sum() >= 2 * fps:
            out[name] = readings(trace, fps)
    return out


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
        return {f for tid in self.edit.offsets for f in self.edit.frames(tid)}

    def _offset(self, tid: int, i: int):
        from faceveil.models.rppg.skin import N_CELLS

        return self.edit.at(tid, i, N_CELLS)

    def __call__(self, i: int, rgb: np.ndarray, dets: Detections) -> None:
        from faceveil.models.rppg.edit import apply_offset

        if not self.edit:
            return
        h, w = rgb.shape[:2]
        self.pixels = h * w * 3
        edited = []
        for j, tid in enumerate(dets.track_ids.tolist()):
            if (delta := self._offset(tid, i)) is None or (r := skin_of(dets, j, h, w, rgb)) is None:
                continue
            win = rgb[r.y0 : r.y1, r.x0 : r.x1]
            before = win[r.mask].astype(np.float64)
            apply_offset(rgb, r, np.asarray(delta, np.float64), np.random.default_rng((self.seed, i, tid)))
            self.sse[tid] = self.sse.get(tid, 0.0) + float(((win[r.mask].astype(np.float64) - before) ** 2).sum())
            edited.append((j, tid, r))
        for j, tid, r in edited:  # read once every face of the frame is edited
            self.after.setdefault(tid, {})[i] = sample(rgb, dets, j, r)

    def rows(self, media_id: str, run_id: str, fps: float, measured: bool = True) -> list[dict]:
        """The report's rows: before (from the pulse task) and after (measured here on the edited
        frames before encoding; `measured` False: the plan, for segment-encoded videos)."""
        if not self.edit:
            return []
        out = []
        for t in self.edit.tracks:
            tid, first, n = t["track_id"], t["first_frame"], t["n_frames"]
            after, regions = t["planned"], {}
            if measured and self.after.get(tid):
                got = region_readings(self.after[tid], first, t["last_frame"], fps)
                after = got.get("mask", after)
                regions = {k: {"before": t["regions"].get(k), "after": v} for k, v in got.items()}
            mse = self.sse.get(tid, 0.0) / max(self.pixels * n, 1)
            optimised = t["optimised"] if t["optimised"] in CHECKERS else "pos"
            found = {
                "before": t["before"],
                "after": after,
                "regions": regions,
                "skin": t["skin"],
                "regions_pass": verdict(self.edit.spec, regions, optimised),
            }
            out.append(
                {
                    "media_id": media_id,
                    "run_id": run_id,
                    "track_id": tid,
                    "first_frame": first,
                    "last_frame": t["last_frame"],
                    "n_frames": n,
                    "spec": self.edit.spec,
                    "optimised": t["optimised"],
                    "readings_json": json.dumps(found),
                    "psnr_db": psnr_from_mse(mse) if measured else None,
                    "measured": bool(measured and self.after.get(tid)),
                }
            )
        return out
