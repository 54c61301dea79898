"""The key vault under the state root's vault/: original face regions sealed per track, data keys
wrapped for the master key, and `keyinfo.json` (master fingerprint, public key, passphrase KDF
parameters and salt when the key comes from a passphrase, and a random archive id). Sealed regions and wrapped keys are bound to
their archive id (besides their media, frame, track and box), so vault parts moved from one archive
to another under the same key do not open there. Anonymizing needs only the public `VaultLock`;
opening needs the key."""
from __future__ import annotations

import hmac
import json
import os
import secrets
import uuid
from datetime import datetime, timezone
from typing import Iterator

import cv2
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from faceveil.storage import manifests
from faceveil.storage.keys import BadKeyError, MasterKey, PassphraseKDF, VaultLock
from faceveil.storage.paths import Location
from faceveil.storage.sealing import (SealError, associated_data, new_data_key, open_sealed, seal, unwrap_data_key,
                                      wrap_data_key)

KEYINFO = "vault/keyinfo.json"


def key_id(media_id: str, track_id: int) -> str:
    return f"{media_id}:{int(track_id)}"


def place(media_id: str, frame: int, track: int, box, kid: str, archive: str | None = None) -> bytes:
    """The associated data of one sealed region: where it belongs (archives made before archive ids
    have none)."""
    where = dict(media=media_id, frame=int(frame), track=int(track), box=[int(v) for v in box], key=kid)
    return associated_data(**where) if archive is None else associated_data(**where, archive=archive)


# ---------------------------------------------------------------- keyinfo


def read_keyinfo(dest: Location) -> dict | None:
    if not dest.exists(KEYINFO):
        return None
    return json.loads(dest.read_bytes(KEYINFO))


def archive_id(dest: Location) -> str | None:
    """The vault's archive id (None for vaults made before archive ids, or no vault)."""
    return (read_keyinfo(dest) or {}).get("archive_id")


def passphrase_kdf(dest: Location) -> PassphraseKDF:
    """How a passphrase becomes this archive's key: its stored parameters and salt (scrypt with its
    salt for vaults made before they were stored), or new ones when the archive has no vault yet."""
    info = read_keyinfo(dest)
    if info and info.get("kdf"):
        return PassphraseKDF.from_dict(info["kdf"])
    if info and info.get("scrypt_salt"):
        return PassphraseKDF("scrypt", info["scrypt_salt"])
    return PassphraseKDF.new()


def check_key(dest: Location, fingerprint: str, *, create: VaultLock | None = None) -> dict:
    """Refuses a key that is not the vault's (constant-time fingerprint comparison) before anything
    is written; with `create`, an archive without a vault gets its keyinfo from that lock."""
    info = read_keyinfo(dest)
    if info is None:
        if create is None:
            raise BadKeyError(f"{dest.display(KEYINFO)}: no vault here (was the archive anonymized with --reversible?)")
        info = {"version": 2, "archive_id": secrets.token_hex(16), "master_fingerprint": create.fingerprint,
                "public_key": create.public_hex, "kdf": create.kdf.as_dict() if create.kdf else None,
                "created_at": datetime.now(timezone.utc).isoformat()}
        dest.write_bytes(KEYINFO, json.dumps(info, indent=2).encode())
        return info
    if not hmac.compare_digest(str(info.get("master_fingerprint", "")).encode(), fingerprint.encode()):
        raise BadKeyError(f"wrong key for the vault of {dest.url} (this key is {fingerprint}, "
                          f"the vault's is {info.get('master_fingerprint')}); nothing was written")
    return info


# ---------------------------------------------------------------- sealing, on workers


class VaultWriter:
    """Seals the original face regions of one media while it is encoded (streamed to a local
    Parquet file, so memory stays flat), then commits entries and wrapped keys to the destination."""

    def __init__(self, lock: VaultLock, media_id: str, scratch: str, batch_rows: int = 256):
        self.lock, self.media_id = lock, media_id
        self.public = bytes.fromhex(lock.public_hex)
        self.path = os.path.join(scratch, f"vault-{media_id}-{uuid.uuid4().hex}.parquet")
        self._keys: dict[int, bytes] = {}
        self._counts: dict[int, int] = {}
        self._rows: list[dict] = []
        self._writer: pq.ParquetWriter | None = None
        self.batch_rows = batch_rows
        self.bytes_sealed = 0

    def data_key(self, track_id: int) -> bytes:
        """The track's random data key (made on first use)."""
        track_id = int(track_id)
        if track_id not in self._keys:
            self._keys[track_id] = new_data_key()
        return self._keys[track_id]

    def seal(self, frame: int, track_id: int, box, crop: np.ndarray) -> None:
        ok, png = cv2.imencode(".png", np.ascontiguousarray(crop[:, :, ::-1]), [cv2.IMWRITE_PNG_COMPRESSION, 1])
        if not ok:
            raise RuntimeError(f"could not encode the face region of frame {frame}")
        kid = key_id(self.media_id, track_id)
        sealed = seal(self.data_key(track_id), png.tobytes(),
                      place(self.media_id, frame, track_id, box, kid, self.lock.archive_id))
        x1, y1, x2, y2 = (int(v) for v in box)
        self._rows.append({"media_id": self.media_id, "frame_index": int(frame), "track_id": int(track_id),
                           "x1": x1, "y1": y1, "x2": x2, "y2": y2, "key_id": kid, "sealed": sealed})
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
        """Entries first, then the keys that open them (a crash in between leaves entries no key opens)."""
        self._flush()
        self._writer.close()
        self._writer = None
        dest.commit_file(self.path, manifests.part_path("vault/entries", self.media_id))
        now = datetime.now(timezone.utc)
        rows = [{"key_id": key_id(self.media_id, t), "media_id": self.media_id, "track_id": t,
                 "wrapped": wrap_data_key(self.public, k, key_id(self.media_id, t), self.lock.archive_id),
                 "master_fingerprint": self.lock.fingerprint, "n_entries": self._counts.get(t, 0),
                 "created_at": now, "forgotten_at": None} for t, k in sorted(self._keys.items())]
        manifests.write_part(dest, "vault/keys", self.media_id, rows)

    def discard(self) -> None:
        if self._writer is not None:
            self._writer.close()
        if os.path.exists(self.path):
            os.unlink(self.path)


# ---------------------------------------------------------------- opening, for key holders


def track_keys(dest: Location, master: MasterKey, media_id: str, tracks=None) -> tuple[dict[int, bytes], list[int]]:
    """(track -> data key for the chosen tracks, forgotten tracks among them). Wrong key: SealError."""
    t = manifests.read_part(dest, "vault/keys", media_id)
    if t is None:
        raise FileNotFoundError(f"{dest.display(manifests.part_path('vault/keys', media_id))}: vault keys missing")
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
    png = open_sealed(data_key, entry["sealed"], place(entry["media_id"], entry["frame_index"], entry["track_id"],
                                                       box, entry["key_id"], archive), what)
    bgr = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
    if bgr is None or bgr.shape[:2] != (box[3] - box[1], box[2] - box[0]):
        raise SealError(f"{what}: region does not match its box")
    return bgr[:, :, ::-1]


def forget_tracks(dest: Location, master: MasterKey, media_id: str, tracks: set[int]) -> list[int]:
    """Crypto-shredding: drops the wrapped data keys of `tracks` (their sealed regions can no longer be
    opened by anyone); returns the tracks shredded now."""
    t = manifests.read_part(dest, "vault/keys", media_id)
    if t is None:
        raise FileNotFoundError(f"{dest.display(manifests.part_path('vault/keys', media_id))}: vault keys missing")
    rows, done, now, aid = t.to_pylist(), [], datetime.now(timezone.utc), archive_id(dest)
    for r in rows:
        if r["track_id"] in tracks and r["wrapped"] is not None:
            unwrap_data_key(master, r["wrapped"], r["key_id"], aid)  # proves the key before destroying anything
            r["wrapped"], r["forgotten_at"] = None, now
            done.append(r["track_id"])
    if done:
        manifests.write_part(dest, "vault/keys", media_id, rows)
    return done


def rotate_key(dest: Location, old: MasterKey, new: VaultLock) -> int:
    """Re-wraps every data key for a new master key (the sealed regions are not touched), then points
    keyinfo at it. Returns the keys re-wrapped. The old key is checked first; nothing changes if wrong."""
    check_key(dest, old.fingerprint)
    public = bytes.fromhex(new.public_hex)
    parts = [r for r in dest.list_files(under="vault/keys") if r.endswith(".parquet")]
    rewrapped, aid = {}, archive_id(dest)
    for rel in parts:  # unwrap everything before writing anything
        mid = rel.rsplit("/", 1)[1][: -len(".parquet")]
        rows = manifests.read_part(dest, "vault/keys", mid).to_pylist()
        for r in rows:
            if r["wrapped"] is not None:
                r["wrapped"] = wrap_data_key(public, unwrap_data_key(old, r["wrapped"], r["key_id"], aid), r["key_id"], aid)
                r["master_fingerprint"] = new.fingerprint
        rewrapped[mid] = rows
    for mid, rows in rewrapped.items():
        manifests.write_part(dest, "vault/keys", mid, rows)
    info = read_keyinfo(dest)
    info.update({"master_fingerprint": new.fingerprint, "public_key": new.public_hex,
                 "kdf": new.kdf.as_dict() if new.kdf else None, "rotated_at": datetime.now(timezone.utc).isoformat()})
    info.pop("scrypt_salt", None)
    dest.write_bytes(KEYINFO, json.dumps(info, indent=2).encode())
    return sum(r["wrapped"] is not None for rows in rewrapped.values() for r in rows)


__all__ = ["rotate_key", "VaultLock", "VaultWriter", "SealError", "BadKeyError", "check_key", "read_keyinfo", "passphrase_kdf",
           "track_keys", "entry_frames", "open_region", "forget_tracks", "key_id", "archive_id"]
