"""Faces a reviewer added by hand: confirmed manual tracks in the state root's review/manual_tracks/,
one Parquet part per media (replaced whole, atomically, like every manifest part). A re-run masks
them always, as forced tracks (`forced`), whatever the detector finds."""

from __future__ import annotations

from datetime import datetime, timezone

from faceveil.storage.manifests import MANUAL_TRACKS, read_part, write_part
from faceveil.storage.paths import Location

TABLE = "review/manual_tracks"
FIRST_ID = 1_000_000  # a manual track's id in the media's tracks: apart from the tracker's ids


def read(state: Location, media_id: str) -> list[dict]:
    """The media's manual-track rows (every track, every frame), [] when it has none."""
    part = read_part(state, TABLE, media_id)
    return part.to_pylist() if part is not None else []


def add(state: Location, media_id: str, boxes: dict[int, list[float]], seed_frame: int, actor: str, reason: str) -> int:
    """Stores one confirmed track (frame -> [x1, y1, x2, y2]) of `media_id`; its new track id.
    ValueError when there is no box, no actor or no reason, or a box is not a box."""
    if not boxes:
        raise ValueError(f"{TABLE}/{media_id}: a manual track needs at least one box")
    if not str(actor).strip() or not str(reason).strip():
        raise ValueError(f"{TABLE}/{media_id}: a manual track needs who added it and why")
    rows = read(state, media_id)
    track = max((r["track_id"] for r in rows), default=FIRST_ID - 1) + 1
    now = datetime.now(timezone.utc)
    for f, b in sorted(boxes.items()):
        x1, y1, x2, y2 = (float(v) for v in b)
        if not (x2 > x1 and y2 > y1 and int(f) >= 0):
            raise ValueError(f"{TABLE}/{media_id}: frame {f}: not a box: {b}")
        rows.append(
            {
                "media_id": media_id,
                "track_id": track,
                "frame_index": int(f),
                "x1": x1,
                "y1": y1,
                "x2": x2,
                "y2": y2,
                "seed_frame": int(seed_frame),
                "actor": actor,
                "created_at": now,
                "reason": reason,
            }
        )
    write_part(state, TABLE, media_id, rows)
    return track


def forced(state: Location, media_id: str) -> dict[int, list[tuple[int, list[float]]]] | None:
    """frame -> [(track id, box)] of the media's confirmed manual tracks; None when it has none."""
    out: dict[int, list] = {}
    for r in read(state, media_id):
        out.setdefault(int(r["frame_index"]), []).append((int(r["track_id"]), [r["x1"], r["y1"], r["x2"], r["y2"]]))
    return out or None


__all__ = ["MANUAL_TRACKS", "TABLE", "FIRST_ID", "read", "add", "forced"]
