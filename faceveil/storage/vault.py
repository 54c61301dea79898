"""The key vault under the state root's vault/: original face regions sealed per track, data keys
wrapped for the master key (its control files, keyinfo.json and the key parts' seals, in
vault_control.py). Sealed regions and wrapped keys are bound to their archive id (besides their
media, frame, track and box), so vault parts moved from one archive to another under the same key do
not open there. Anonymizing needs only the public `VaultLock`; opening needs the key.
Over 300 lines: `VaultWriter` (sealing) and the functions that open, forget and re-key its entries share
the entry format and its binding to the archive."""

from __future__ import annotations

import hmac
import json
import os
import uuid
from datetime import datetime, timezone
from typing import Iterator

import cv2
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from faceveil.storage import manifests
from faceveil.storage.control import ControlFileError, control_key, verified
from faceveil.storage.keys import BadKeyError, MasterKey, PassphraseKDF, VaultLock
from faceveil.storage.vault_control import (
    KEYINFO,
    archive_id,
    check_key,
    check_master,
    key_part,
    passphrase_kdf,
    read_keyinfo,
    seal_part,
    seal_path,
    write_keyinfo,
)
from faceveil.storage.paths import Location
from faceveil.storage.sealing import (
    SealError,
    associated_data,
    new_data_key,
    open_sealed,
    seal,
    unwrap_data_key,
    wrap_data_key,
)


def key_id(media_id: str, track_id: int) -> str:
    return f"{media_id}:{int(track_id)}"


def place(media_id: str, frame: int, track: int, box, kid: str, archive: str | None = None) -> bytes:
    """The associated data of one sealed region: where it belongs (archives made before archive ids
    have none)."""
    where = dict(media=media_id, frame=int(frame), track=int(track), box=[int(v) for v in box], key=kid)
    return associated_data(**where) if archive is None else associated_data(**where, archive=archive)


# ---------------------------------------------------------------- sealing, on workers


class VaultWriter:
    """Seals the original face regions of one media while it is encoded (streamed to a local
    Parquet file, so memory stays flat), then commits entries and wrapped keys to the destination.
    Tracks in `skip` (forgotten people: storage/tombstones) are never sealed, only counted."""

    def __init__(self, lock: VaultLock, media_id: str, scratch: str, batch_rows: int = 256, skip=()):
        self.lock, self.media_id, self.skip, self.n_skipped = lock, media_id, frozenset(skip), 0
        self.public = bytes.fromhex(lock.public_hex)
        self.path = os.path.join(scratch, f"vault-{media_id}-{uuid.uuid4().hex}.parquet")
        self._keys: dict[int, bytes] = {}
        self._counts: dict[int, int] = {}
        self._rows: list[dict] = []
        self._writer: pq.ParquetWriter | None = None
        self.batch_rows = batch_rows
        self.bytes_sealed = 0
        self.keys_sha256: str | None = None

    def data_key(self, track_id: int) -> bytes:
        """The track's random data key (made on first use)."""
        track_id = int(track_id)
        if track_id not in self._keys:
            self._keys[track_id] = new_data_key()
        return self._keys[track_id]

    def seal(self, frame: int, track_id: int, box, crop: np.ndarray) -> None:
        if int(track_id) in self.skip:
            self.n_skipped += 1
            return
        ok, png = cv2.imencode(".png", np.ascontiguousarray(crop[:, :, ::-1]), [cv2.IMWRITE_PNG_COMPRESSION, 1])
        if not ok:
            raise RuntimeError(f"could not encode the face region of frame {frame}")
        kid = key_id(self.media_id, track_id)
        sealed = seal(
            self.data_key(track_id),
            png.tobytes(),
            place(self.media_id, frame, track_id, box, kid, self.lock.archive_id),
        )
        x1, y1, x2, y2 = (int(v) for v in box)
        self._rows.append(
            {
                "media_id": self.media_id,
                "frame_index": int(frame),
                "track_id": int(track_id),
                "x1": x1,
                "y1": y1,
                "x2": x2,
                "y2": y2,
                "key_id": kid,
                "sealed": sealed,
            }
        )
        self._counts[int(track_id)] = self._counts.get(int(track_id), 0) + 1
        self.bytes_sealed += len(sealed)
        if len(self._rows) >= self.batch_rows:
            self._flush()

    def _flush(self) -> None:
        if self._writer is None:
            self._writer = pq.ParquetWriter(self.path, manifests.VAULT_ENTRIES, compression="none")
        if self._rows:
            self._writer.write_table(pa.Table.from_pylist(self._rows, schema=manifests.VAULT_ENTRIES))
            self._rows = []

    @property
    def n_entries(self) -> int:
        return sum(self._counts.values())

    def commit(self, dest: Location) -> None:
        """Entries first, then the keys that open them (a crash in between leaves entries no key opens);
        `keys_sha256` is then the key part's digest, for its seal (sealed by the key holder: `seal_part`)."""
        self._flush()
        self._writer.close()
        self._writer = None
        dest.commit_file(self.path, manifests.part_path("vault/entries", self.media_id))
        now = datetime.now(timezone.utc)
        rows = [
            {
                "key_id": key_id(self.media_id, t),
                "media_id": self.media_id,
                "track_id": t,
                "wrapped": wrap_data_key(self.public, k, key_id(self.media_id, t), self.lock.archive_id),
                "master_fingerprint": self.lock.fingerprint,
                "n_entries": self._counts.get(t, 0),
                "created_at": now,
                "forgotten_at": None,
            }
            for t, k in sorted(self._keys.items())
        ]
        self.keys_sha256 = manifests.write_part(dest, "vault/keys", self.media_id, rows)

    def discard(self) -> None:
        if self._writer is not None:
            self._writer.close()
        if os.path.exists(self.path):
            os.unlink(self.path)


# ---------------------------------------------------------------- opening, for key holders


def track_keys(dest: Location, master: MasterKey, media_id: str, tracks=None) -> tuple[dict[int, bytes], list[int]]:
    """(track -> data key for the chosen tracks, forgotten tracks among them), from the media's sealed
    key part. Wrong key: SealError; a part its seal does not vouch for: ControlFileError."""
    t = key_part(dest, {master.fingerprint: control_key(master)}, media_id)
    keys, forgotten, aid = {}, [], archive_id(dest)
    for r in t.to_pylist():
        if tracks is not None and r["track_id"] not in tracks:
            continue
        if r["wrapped"] is None:
            forgotten.append(r["track_id"])
        else:
            keys[r["track_id"]] = unwrap_data_key(master, r["wrapped"], r["key_id"], aid)
    return keys, forgotten


def entry_frames(dest: Location, media_id: str, scratch: str, columns=None) -> Iterator[tuple[int, list[dict]]]:
    """(frame, entries) in frame order, read a row group at a time."""
    rel = manifests.part_path("vault/entries", media_id)
    if not dest.exists(rel):
        raise FileNotFoundError(f"{dest.display(rel)}: vault entries missing")
    with dest.local_file(rel, scratch) as path:
        cur, rows = None, []
        for batch in pq.ParquetFile(path).iter_batches(columns=columns):
            for r in batch.to_pylist():
                if r["frame_index"] != cur:
                    if rows:
                        yield cur, rows
                    cur, rows = r["frame_index"], []
                rows.append(r)
        if rows:
            yield cur, rows


def open_region(entry: dict, data_key: bytes, archive: str | None = None) -> np.ndarray:
    """The original RGB region of one entry of the archive `archive` (its id); SealError if it was
    modified, moved (within or between archives) or the key is wrong."""
    box = (entry["x1"], entry["y1"], entry["x2"], entry["y2"])
    what = f"vault entry media {entry['media_id']} frame {entry['frame_index']} track {entry['track_id']}"
    png = open_sealed(
        data_key,
        entry["sealed"],
        place(entry["media_id"], entry["frame_index"], entry["track_id"], box, entry["key_id"], archive),
        what,
    )
    bgr = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
    if bgr is None or bgr.shape[:2] != (box[3] - box[1], box[2] - box[0]):
        raise SealError(f"{what}: region does not match its box")
    return bgr[:, :, ::-1]


def forget_tracks(dest: Location, master: MasterKey, media_id: str, tracks: set[int], scratch: str) -> list[int]:
    """Crypto-shredding: drops the wrapped data keys of `tracks` (their sealed regions can no longer be
    opened by anyone), then their sealed regions themselves; the key part is sealed anew. Returns the
    tracks shredded now (a track forgotten before: its leftover regions, if any, go too)."""
    control = control_key(master)
    rows, done, now, aid = (
        key_part(dest, {master.fingerprint: control}, media_id).to_pylist(),
        [],
        datetime.now(timezone.utc),
        archive_id(dest),
    )
    for r in rows:
        if r["track_id"] in tracks and r["wrapped"] is not None:
            unwrap_data_key(master, r["wrapped"], r["key_id"], aid)  # proves the key before destroying anything
            r["wrapped"], r["forgotten_at"] = None, now
            done.append(r["track_id"])
    if done:
        seal_part(dest, control, master.fingerprint, media_id, manifests.write_part(dest, "vault/keys", media_id, rows))
    _drop_entries(dest, media_id, {r["track_id"] for r in rows if r["wrapped"] is None}, scratch)
    return done


def _drop_entries(dest: Location, media_id: str, tracks: set[int], scratch: str) -> None:
    """The media's sealed regions less those of `tracks`, rewritten a row group at a time."""
    rel = manifests.part_path("vault/entries", media_id)
    if not tracks or not dest.exists(rel):
        return
    out = os.path.join(scratch, f"entries-{uuid.uuid4().hex}.parquet")
    try:
        with dest.local_file(rel, scratch) as path:
            src = pq.ParquetFile(path)
            keep = pa.array(sorted(tracks), pa.int64())
            with pq.ParquetWriter(out, manifests.VAULT_ENTRIES, compression="none") as w:
                for batch in src.iter_batches():
                    t = pa.Table.from_batches([batch]).cast(manifests.VAULT_ENTRIES)
                    w.write_table(t.filter(pc.invert(pc.is_in(t["track_id"], keep))))
        dest.commit_file(out, rel)
    finally:
        if os.path.exists(out):
            os.unlink(out)


def rotation_checked(dest: Location, old: MasterKey, new: MasterKey) -> bool:
    """Before a rotation from `old` to `new` starts or resumes: True when the vault is `new`'s already
    (keyinfo signed with it), False when it is `old`'s (signed with it; an interrupted rotation it
    names must be to `new`); BadKeyError, nothing written, otherwise."""
    info = read_keyinfo(dest)
    if info is not None and hmac.compare_digest(str(info.get("master_fingerprint")).encode(), new.fingerprint.encode()):
        verified(info, control_key(new), "keyinfo", dest.display(KEYINFO))
        return True
    if info is None or not info.get("rotating_to"):
        check_key(dest, old.fingerprint, control=control_key(old))
        return False
    if not hmac.compare_digest(str(info.get("master_fingerprint")).encode(), old.fingerprint.encode()):
        raise BadKeyError(f"wrong key for the vault of {dest.url}; nothing was written")
    verified(info, control_key(old), "keyinfo", dest.display(KEYINFO))  # resuming: still the old key's
    if info["rotating_to"].get("fingerprint") != new.fingerprint:
        raise BadKeyError(
            f"{dest.url}: an interrupted rotation to key {info['rotating_to'].get('fingerprint')} must "
            "be finished with that key first"
        )
    return False


def rotate_key(dest: Location, old: MasterKey, new: MasterKey, kdf: PassphraseKDF | None = None) -> int:
    """Re-wraps every data key for `new` (the sealed regions are not touched), part by part, each part
    sealed anew with `new`, then points keyinfo at it. Returns the keys re-wrapped now. Resumable:
    keyinfo names the rotation (`rotating_to`) before any part changes, so a second call with both keys
    finishes an interrupted one (parts already moved are left); a finished one returns 0. The old key
    is checked first; nothing changes if it is wrong."""
    controls = {old.fingerprint: control_key(old), new.fingerprint: control_key(new)}
    if rotation_checked(dest, old, new):
        return 0  # done before
    info = read_keyinfo(dest)
    lock = VaultLock.of(new, kdf)
    moving = {"fingerprint": new.fingerprint, "public_key": lock.public_hex, "kdf": kdf.as_dict() if kdf else None}
    write_keyinfo(dest, {**info, "rotating_to": moving}, controls[old.fingerprint])
    public, aid, n = bytes.fromhex(lock.public_hex), archive_id(dest), 0
    for rel in dest.list_files(under="vault/keys"):
        mid = rel.rsplit("/", 1)[1][: -len(".parquet")]
        rows = key_part(dest, controls, mid).to_pylist()
        todo = [r for r in rows if r["wrapped"] is not None and r["master_fingerprint"] != new.fingerprint]
        for r in todo:  # unwrapped and wrapped in memory; the part replaced whole
            r["wrapped"] = wrap_data_key(public, unwrap_data_key(old, r["wrapped"], r["key_id"], aid), r["key_id"], aid)
            r["master_fingerprint"] = new.fingerprint
        if todo or json.loads(dest.read_bytes(seal_path(mid))).get("key") != new.fingerprint:
            seal_part(
                dest,
                controls[new.fingerprint],
                new.fingerprint,
                mid,
                manifests.write_part(dest, "vault/keys", mid, rows),
            )
        n += len(todo)
    info = {k: v for k, v in info.items() if k not in ("rotating_to", "scrypt_salt", "mac")}
    info.update(
        {
            "master_fingerprint": new.fingerprint,
            "public_key": lock.public_hex,
            "kdf": moving["kdf"],
            "rotated_from": old.fingerprint,
            "rotated_at": datetime.now(timezone.utc).isoformat(),
        }
    )
    write_keyinfo(dest, info, controls[new.fingerprint])
    return n


__all__ = [
    "rotate_key",
    "rotation_checked",
    "VaultLock",
    "VaultWriter",
    "SealError",
    "BadKeyError",
    "check_key",
    "check_master",
    "read_keyinfo",
    "passphrase_kdf",
    "track_keys",
    "entry_frames",
    "open_region",
    "forget_tracks",
    "key_id",
    "archive_id",
    "seal_part",
    "seal_path",
    "ControlFileError",
]
