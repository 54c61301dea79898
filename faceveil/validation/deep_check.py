"""The deep leak check of one published media: many frames of its output (DEEP_FRAMES spread evenly
over a video, every frame of a shorter one; a photo is one frame), each looked at by the leak gate's
detectors. The masked pixels are the regions the run recorded for that frame (its detections and
the reviewers' manual tracks, grown as the run's mask settings grow them, without the motion margin:
the check assumes no more was masked than that); a face found mostly outside them, and found again
in a window around it, is a leak. Faces checked: the recorded faces of the checked frames, plus the
leaks. No originals are needed (no key): what the output shows is what is checked."""

from __future__ import annotations

import json
import time
from functools import lru_cache

import numpy as np

from faceveil.models.anonymizers.base import MaskSettings, mask_regions
from faceveil.models.detections import Detections
from faceveil.models.scope import scope_regions
from faceveil.storage import manifests, manual_tracks
from faceveil.storage.media import iter_frames, probe_video, read_image
from faceveil.storage.paths import Location
from faceveil.validation.image_quality import region_mask
from faceveil.validation.leak_bound import leak_upper_bound
from faceveil.validation.leak_gate import found_at, unmasked_faces
from faceveil.validation.privacy import CheckSettings

DEEP_FRAMES = 300  # checked frames per video by default (every frame of a shorter one)
TABLE, KEY = "checks", "deep"  # the results: checks/deep.parquet in the state root (ops/deep_check writes it)


def spread_frames(n_frames: int, frames: int = DEEP_FRAMES) -> list[int]:
    """`frames` frame indices spread evenly over `n_frames` (first and last included); all when fewer."""
    if n_frames <= 0 or frames <= 0:
        return []
    if n_frames <= frames:
        return list(range(n_frames))
    return sorted({int(f) for f in np.linspace(0, n_frames - 1, frames).round()})


@lru_cache(maxsize=2)
def gate_detectors(settings: CheckSettings = CheckSettings()) -> tuple[list, list]:
    """(gate, confirm): the leak gate's (name, detector) pairs at its scores, and its detectors at the
    scores that confirm a face (loaded once per process)."""
    from faceveil.models.detectors import DetectorSettings, create_detector

    def load(which):
        return [(name, create_detector(name, DetectorSettings(threshold=t))) for name, t in which]

    return load(settings.gate), [d for _, d in load(settings.confirm)]


def mask_settings(settings_json: str | None) -> MaskSettings:
    """The mask settings a media's run used (its manifest row's settings_json; defaults where unset)."""
    s = json.loads(settings_json) if settings_json else {}
    d = MaskSettings()
    return MaskSettings(
        s.get("mask_shape") or d.shape,
        float(s.get("pad", d.pad)),
        float(s.get("motion_pad", d.motion_pad)),
        s.get("scope") or d.scope,
    )


def recorded_regions(state: Location, row: dict) -> dict[int, np.ndarray]:
    """frame -> the (N, 4) integer xyxy regions the run masked there, from the media's detections part
    and its manual tracks; each region stands for one recorded face."""
    mid, w, h = row["media_id"], int(row.get("width") or 0), int(row.get("height") or 0)
    boxes: dict[int, list] = {}
    part = manifests.read_part(state, "detections", mid)
    if part is not None and part.num_rows:
        cols = part.select(["frame_index", "x1", "y1", "x2", "y2"]).to_pydict()
        for f, *b in zip(*cols.values()):
            boxes.setdefault(int(f), []).append(b)
    for r in manual_tracks.read(state, mid):
        boxes.setdefault(int(r["frame_index"]), []).append([r["x1"], r["y1"], r["x2"], r["y2"]])
    mask = mask_settings(row.get("settings_json"))
    out = {}
    for f, b in boxes.items():
        d = Detections(np.asarray(b, np.float32), np.ones(len(b), np.float32))
        out[f] = scope_regions(d.boxes, d.sizes, mask_regions(d, w, h, mask), mask.scope, w, h)
    return out


def check_frame(rgb: np.ndarray, regions: np.ndarray, gate: list, confirm: list, min_leak_size: float) -> list[dict]:
    """The leaks of one output frame: faces the gate finds less than half inside `regions`, found again
    by the confirming detectors in a window around them ({detector, score, box})."""
    found = [(name, d.detect(rgb)) for name, d in gate]
    candidates = unmasked_faces(found, region_mask(rgb.shape, regions), min_leak_size)
    return [c for c in candidates if found_at(confirm, rgb, c["box"])]


def check_output(
    path: str,
    kind: str,
    regions: dict[int, np.ndarray],
    frames: int = DEEP_FRAMES,
    settings: CheckSettings = CheckSettings(),
) -> dict:
    """The deep check of one media's output at the local `path` ('image' or 'video') against the
    `regions` its run recorded per frame: {frames_checked, faces_checked, leaks, upper_95, leak_frames,
    leak_boxes (JSON: frame -> boxes), seconds}. MediaError (naming the file) when it cannot be read."""
    gate, confirm = gate_detectors(settings)
    t0 = time.perf_counter()
    if kind == "image":
        pictures = iter([(0, read_image(path)[0])])
        chosen = [0]
    else:
        info = probe_video(path)
        chosen = spread_frames(info.n_frames, frames)
        wanted = set(chosen)
        pictures = iter_frames(path, info, select=wanted.__contains__)
    faces, found = 0, {}
    empty = np.zeros((0, 4), np.int64)
    for i, rgb in pictures:
        r = regions.get(i, empty)
        leaks = check_frame(rgb, r, gate, confirm, settings.min_leak_size)
        faces += len(r) + len(leaks)
        if leaks:
            found[i] = leaks
    n_leaks = sum(len(v) for v in found.values())
    return {
        "frames_checked": len(chosen),
        "faces_checked": faces,
        "leaks": n_leaks,
        "upper_95": leak_upper_bound(n_leaks, faces),
        "leak_frames": sorted(found),
        "leak_boxes": json.dumps({str(k): v for k, v in sorted(found.items())}) if found else None,
        "seconds": round(time.perf_counter() - t0, 3),
    }


def stored_results(state: Location) -> list[dict]:
    """The latest deep-check rows (one per media, in path order), [] when the archive was never checked."""
    part = manifests.read_part(state, TABLE, KEY)
    return part.to_pylist() if part is not None else []


def report_rows(state: Location) -> list[dict]:
    """The stored deep-check rows as the run's report shows them (JSON-safe)."""
    keep = (
        "rel_path",
        "status",
        "checked_at",
        "frames_checked",
        "faces_checked",
        "leaks",
        "upper_95",
        "leak_frames",
        "error",
    )
    return [
        {k: (r[k].isoformat(timespec="seconds") if k == "checked_at" and r[k] is not None else r[k]) for k in keep}
        for r in stored_results(state)
    ]
