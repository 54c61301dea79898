"""What the review page reads: the media to review (withheld, failed, reviewed), the gate's flagged
boxes per frame, one frame of a media (its anonymized output, withheld or published, or the
original from the source) and a JPEG of it with boxes drawn."""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np

from faceveil.storage import manifests, manual_tracks
from faceveil.storage.media import read_frame as media_frame
from faceveil.storage.paths import Location

REVIEWED = ("leaked", "failed", "released")
GATE, MANUAL, PROPOSED = (230, 40, 40), (40, 200, 60), (250, 200, 0)  # box colours (RGB)


@dataclass
class Archive:
    """The archive under review: public tree, state root, scratch folder for downloads."""

    dest: Location
    state: Location
    scratch: str


def queue(state: Location) -> list[dict]:
    """The media a reviewer looks at (withheld, failed, released), in path order, with what the page shows."""
    t = manifests.read_table(state, "media")
    rows = [r for r in t.to_pylist() if r["status"] in REVIEWED]
    keep = (
        "media_id",
        "rel_path",
        "kind",
        "status",
        "reason",
        "leak_frames",
        "quarantine_path",
        "output_path",
        "frames_in",
        "width",
        "height",
        "fps",
        "run_id",
        "notes",
    )
    return sorted(({k: r.get(k) for k in keep} for r in rows), key=lambda r: r["rel_path"])


def media_row(state: Location, media_id: str) -> dict:
    """The media manifest row of `media_id`; ValueError naming the part when there is none."""
    part = manifests.read_part(state, "media", media_id)
    if part is None or part.num_rows != 1:
        raise ValueError(f"{state.display(manifests.part_path('media', media_id))}: no such media in this archive")
    return part.to_pylist()[0]


def gate_boxes(state: Location, media_id: str) -> dict[int, list[dict]]:
    """frame -> the faces the leak gate found unmasked there ({detector, score, box})."""
    part = manifests.read_part(state, "checks/frames", media_id)
    out: dict[int, list[dict]] = {}
    for r in part.to_pylist() if part is not None else []:
        if r["leak_boxes"]:
            out[int(r["frame_index"])] = json.loads(r["leak_boxes"])
    return out


def manual_boxes(state: Location, media_id: str) -> dict[int, dict[int, list[float]]]:
    """track id -> frame -> box of the media's confirmed manual tracks."""
    out: dict[int, dict[int, list[float]]] = {}
    for r in manual_tracks.read(state, media_id):
        out.setdefault(int(r["track_id"]), {})[int(r["frame_index"])] = [r["x1"], r["y1"], r["x2"], r["y2"]]
    return out


def source(state: Location, run_id: str) -> Location:
    """The source archive the run `run_id` read (from the runs manifest)."""
    runs = [r for r in manifests.read_table(state, "runs").to_pylist() if r["run_id"] == run_id]
    if not runs or not runs[0]["src"]:
        raise ValueError(f"{state.display('runs')}: no run {run_id} with a source recorded")
    return Location(runs[0]["src"])


def anonymized_place(archive: Archive, row: dict) -> tuple[Location, str]:
    """Where the media's anonymized output is: quarantine (withheld) or the public tree (released)."""
    if row.get("quarantine_path") and archive.state.exists(row["quarantine_path"]):
        return archive.state, row["quarantine_path"]
    if row.get("output_path") and archive.dest.exists(row["output_path"]):
        return archive.dest, row["output_path"]
    raise ValueError(f"{row['rel_path']}: no anonymized output to show (status {row['status']}: {row.get('reason')})")


def read_frame(loc: Location, rel: str, kind: str, index: int, scratch: str) -> np.ndarray:
    """Frame `index` (0 for a photo) of the media at `rel` in `loc`, RGB, upright."""
    with loc.local_file(rel, scratch) as local:
        return media_frame(local, kind, index, name=rel)


def jpeg(rgb: np.ndarray, boxes: list[tuple[tuple, list[float]]] = (), quality: int = 90) -> bytes:
    """The frame as JPEG with `boxes` ((colour, xyxy)) drawn on a copy."""
    import cv2

    img = np.ascontiguousarray(rgb[..., ::-1]).copy()
    t = max(1, round(max(img.shape[:2]) / 300))
    for colour, b in boxes:
        x1, y1, x2, y2 = (int(round(float(v))) for v in b)
        cv2.rectangle(img, (x1, y1), (x2, y2), tuple(int(c) for c in colour[::-1]), t)
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("frame could not be encoded as JPEG")
    return buf.tobytes()
