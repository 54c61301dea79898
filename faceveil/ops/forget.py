"""Forget: chosen tracks made unrecoverable and unfindable. Their data keys are deleted from the vault
(crypto-shredding) and their sealed regions with them; their rows leave the identity index, whose old
versions are cleaned up; a tombstone (storage/tombstones) keeps later runs of the media from sealing
or indexing them again. What it cannot reach: backups and snapshots of the state root, versions kept
by an S3 bucket's versioning, copies restored earlier."""

from __future__ import annotations

import tempfile

from faceveil.storage import manifests, tombstones
from faceveil.storage.control import control_key
from faceveil.storage.keys import MasterKey
from faceveil.storage.paths import Location
from faceveil.storage.vault import check_master, forget_tracks
from faceveil.tasks.restore_media import ok_media, resolve_tracks


def forget(archive: Location, master: MasterKey, refs: list[str]) -> dict:
    """Forgets the referenced tracks of the archive whose state root is `archive`; returns media path
    -> tracks shredded now (a track forgotten before: its tombstone and index rows made sure of)."""
    check_master(archive, master)
    control, media, done = control_key(master), ok_media(archive), {}
    for mid, tracks in resolve_tracks(archive, refs).items():
        tombstones.add(archive, control, mid, media[mid]["rel_path"], _where(archive, mid, tracks))
        with tempfile.TemporaryDirectory(prefix="faceveil-forget-") as scratch:
            done[media[mid]["rel_path"]] = forget_tracks(archive, master, mid, tracks, scratch)
        _unindex(archive, mid, tracks)
    return done


def _where(archive: Location, media_id: str, tracks: set[int]) -> dict[int, list[tuple]]:
    """track -> [(frame, box)] of the tracks, from the media's detections manifest."""
    det = manifests.read_part(archive, "detections", media_id)
    out: dict[int, list[tuple]] = {int(t): [] for t in tracks}
    for r in det.to_pylist() if det is not None else []:
        if r["track_id"] in out:
            out[r["track_id"]].append((r["frame_index"], [r["x1"], r["y1"], r["x2"], r["y2"]]))
    return out


def _unindex(archive: Location, media_id: str, tracks: set[int]) -> None:
    """The tracks' template and exemplar rows out of the identity index, and the table's old versions
    (which still hold them) cleaned up."""
    from faceveil.storage.identity_index import IdentityIndex

    IdentityIndex(archive).forget_tracks(media_id, tracks)
