"""Tombstones of forgotten tracks (`faceveil forget`): where each forgotten person was in a media (its
path, frames and boxes), one file per media in the state root (vault/forgotten/<media id>.json),
signed with the control-file key (storage/control.py). A later run of that media (new settings, a
new version) reads them in the flow's process and seals and indexes no face found there again: a
forgotten track stays forgotten. Deleting a tombstone file needs write access to the state root
(which can also delete the vault); it is not detected."""

from __future__ import annotations

import json
from datetime import datetime, timezone

from faceveil.storage.control import signed, verified
from faceveil.storage.paths import Location

FOLDER = "vault/forgotten"
LABEL = "forgotten"


def _rel(media_id: str) -> str:
    return f"{FOLDER}/{media_id}.json"


def read(state: Location, control: bytes, media_id: str) -> dict | None:
    """One media's tombstone {"media_id", "rel_path", "tracks": {track: {"frames", "boxes"}}}, its MAC
    checked; None when it has none."""
    if not state.exists(_rel(media_id)):
        return None
    return verified(json.loads(state.read_bytes(_rel(media_id))), control, LABEL, state.display(_rel(media_id)))


def add(state: Location, control: bytes, media_id: str, rel_path: str, tracks: dict[int, list[tuple]]) -> None:
    """Adds forgotten tracks (track -> [(frame, [x1, y1, x2, y2])]) to the media's tombstone."""
    doc = read(state, control, media_id) or {"media_id": media_id, "rel_path": rel_path, "tracks": {}}
    now = datetime.now(timezone.utc).isoformat()
    for t, seen in tracks.items():
        doc["tracks"][str(int(t))] = {
            "frames": [int(f) for f, _ in seen],
            "boxes": [[round(float(v), 1) for v in b] for _, b in seen],
            "forgotten_at": now,
        }
    state.write_bytes(_rel(media_id), json.dumps(signed(doc, control, LABEL)).encode())


def marks(state: Location, control: bytes, media_id: str) -> dict[int, list] | None:
    """frame -> boxes where the media's forgotten people were (None when nobody was forgotten)."""
    doc = read(state, control, media_id)
    if not doc:
        return None
    out: dict[int, list] = {}
    for t in doc["tracks"].values():
        for f, b in zip(t["frames"], t["boxes"]):
            out.setdefault(int(f), []).append(b)
    return out
