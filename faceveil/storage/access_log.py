"""The access log under the state root's access_log/: one Parquet file per row, `<seq, 12 digits>.parquet`,
written once and never rewritten. Each row carries an HMAC-SHA256 over the previous row's MAC and its
own fields, so a removed, edited, re-keyed, reordered or renamed row shows up in `verify`. Rows carry
key fingerprints, never keys.

Key rotation (`hand_over`) keeps the chain: the MAC key of each master key's span of rows is derived
from that master key, and the rotation row that starts the new key's span names the old and new
fingerprints, is MACed under both, and carries the old span's MAC key sealed for the new one
(`log_chain`). `verify` with the newest key walks back through every rotation; the retired key can
append nothing after its span, nor alter a row before it unnoticed (the rotation row pins its MAC).

Every key holder can re-sign that chain, and cut its newest rows. Against both: once the auditor's
log key is set up (`set_up_seal`), rows also carry a forward-secure tag that key holders cannot
forge for a row already written (`log_seal`), and the log's heads are recorded outside the state
root (`log_anchors`); `verify` checks both when given them."""

from __future__ import annotations

import hmac
import json
import re
from datetime import datetime, timezone

from faceveil.storage import auditor_key, log_chain, log_seal
from faceveil.storage.keys import BadKeyError, MasterKey
from faceveil.storage.log_chain import ROTATION
from faceveil.storage.log_rows import (
    FOLDER,
    GENESIS_MAC,
    AccessLogError,
    details,
    file_name,
    dumps as _dumps,
    encode as _encode,
    mac as _mac,
    payload as _payload,
    read_row as _read_row,
    seqs as _seqs,
)
from faceveil.storage.log_verify import verify  # noqa: F401  (re-exported)
from faceveil.storage.manifests import ACCESS_LOG  # noqa: F401  (re-exported)
from faceveil.storage.paths import Location

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_MAX_TRIES = 1000


def _new_row(fingerprint: str, actor: str, action: str, reason: str, probe_sha256, matched, details) -> dict:
    """A row's own fields, checked: non-empty reason, actor and action; hex probe digest; JSON details."""
    for name, value in (("reason", reason), ("actor", actor), ("action", action)):
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"access log: {name} must be a non-empty string")
    if probe_sha256 is not None:
        probe_sha256 = str(probe_sha256).lower()
        if not _SHA256.match(probe_sha256):
            raise ValueError("access log: probe_sha256 must be 64 hex digits")
    try:
        details_json = _dumps(details if details is not None else {})
    except (TypeError, ValueError) as e:
        raise ValueError(f"access log: details must be JSON-serialisable ({e})") from None
    return {
        "actor": actor,
        "action": action,
        "reason": reason,
        "probe_sha256": probe_sha256,
        "matched": [str(m) for m in matched],
        "key_fingerprint": fingerprint,
        "details_json": details_json,
    }


def append(
    loc: Location,
    master: MasterKey,
    *,
    actor: str,
    action: str,
    reason: str,
    probe_sha256: str | None = None,
    matched=(),
    details: dict | None = None,
) -> dict:
    """Adds one row (seq = last seq + 1, chained to the last row's MAC) and returns it.
    The row's file is created exclusively (locally, or by a conditional write on S3), so concurrent
    appenders never share a seq: the loser tries the next one. Refuses an empty reason, actor or action, a key other than the log's, and
    a log whose last file is unreadable (run `verify`); AccessLogError when it cannot be written."""
    row = _new_row(master.fingerprint, actor, action, reason, probe_sha256, matched, details)
    key = log_chain.mac_key(master)

    def sign(r: dict) -> None:
        r["mac"] = _mac(key, r)

    return _commit(loc, master, row, sign)


def hand_over(
    loc: Location, old: MasterKey, new: MasterKey, *, actor: str, reason: str, matched=(), details: dict | None = None
) -> dict:
    """Appends the rotation row (action 'rotate-key') from which the log is kept with `new`. Its
    details' 'rotation' names both fingerprints, holds the old span's MAC key sealed for the new span
    and the row's MAC under the old key ('old_mac'); the row's own MAC is under the new key."""
    if details and ROTATION in details:
        raise ValueError(f"access log: details.{ROTATION} is set by hand_over")
    row = _new_row(new.fingerprint, actor, "rotate-key", reason, None, matched, details)
    base = json.loads(row["details_json"])
    old_key, new_key = log_chain.mac_key(old), log_chain.mac_key(new)
    sealed = log_chain.seal_previous(new_key, old_key, old.fingerprint, new.fingerprint)

    def sign(r: dict) -> None:
        rotation = {"old_key": old.fingerprint, "new_key": new.fingerprint, "previous_key_sealed": sealed}
        r["details_json"] = _dumps({**base, ROTATION: rotation})
        rotation["old_mac"] = _mac(old_key, r)
        r["details_json"] = _dumps({**base, ROTATION: rotation})
        r["mac"] = _mac(new_key, r)

    return _commit(loc, old, row, sign, successor=new)


def _commit(loc: Location, current: MasterKey, row: dict, sign, successor: MasterKey | None = None) -> dict:
    """Writes `row` as the next seq once the log is found to be kept with `current`; `sign` sets its MAC.
    With a log key set up, the row gets its tag and the sealing state moves on to the next seq (kept
    for `successor`, the key after a rotation). A state ahead of the log (rows cut) puts the row at
    the state's seq: the gap stays for `verify` to name."""
    for _ in range(_MAX_TRIES):
        try:
            sealing = log_seal.read_state(loc)  # before the listing: so a state ahead of it means rows were cut
        except log_seal.SealStateError as e:
            raise AccessLogError(f"{e}; nothing was written") from None
        files, _other = _seqs(loc)
        prev = None
        if files:
            last = max(files)
            prev = _read_row(loc, files[last])
            if not hmac.compare_digest(str(prev.get("key_fingerprint") or "").encode(), current.fingerprint.encode()):
                raise BadKeyError(
                    f"{loc.display(FOLDER)}: the access log is kept with key "
                    f"{prev.get('key_fingerprint')}, this key is {current.fingerprint}; "
                    "nothing was written"
                )
            seq, prev_mac = last + 1, prev["mac"]
        else:
            seq, prev_mac = 1, GENESIS_MAC
        seq = max(seq, sealing.epoch) if sealing is not None else seq
        row.update(seq=seq, time=datetime.now(timezone.utc), prev_mac=prev_mac, fs_tag=None)
        try:
            sign(row)
        except ValueError:
            raise AccessLogError(f"{loc.display(files[last])}: malformed MAC; run verify") from None
        key = _seal_key(loc, sealing, current, prev, seq) if sealing is not None else None
        if key is not None:
            row["fs_tag"] = auditor_key.tag(key, _payload(row))
        data, rel = _encode(row), file_name(seq)
        try:
            created = loc.create_bytes(rel, data)
        except OSError as e:
            raise AccessLogError(
                f"{loc.display(FOLDER)}: cannot write the access log "
                f"({type(e).__name__}: {e.strerror or e}); nothing was written"
            ) from None
        if created and key is not None:
            keeper = successor or current
            try:
                log_seal.write_state(
                    loc,
                    log_chain.mac_key(keeper),
                    keeper.fingerprint,
                    seq + 1,
                    sealing.start,
                    sealing.log_key_id,
                    auditor_key.next_key(key),
                )
            except log_seal.SealStateError as e:
                raise AccessLogError(f"seq {seq} was written, but {e}") from None
        if created:
            return dict(row)
    raise AccessLogError(f"{loc.display(FOLDER)}: no free seq after {_MAX_TRIES} tries (too many concurrent appenders)")


def _seal_key(loc: Location, sealing, current: MasterKey, prev: dict | None, seq: int) -> bytes:
    """K_seq from the sealing state, opened with `current` (or, when a rotation to `current` is the
    last row and the state is still kept for the key before, with the key that row hands over)."""
    mac_key = log_chain.mac_key(current)
    if sealing.key_fingerprint != current.fingerprint:
        rotation = details(prev).get(ROTATION) if prev and prev.get("action") == "rotate-key" else None
        mac_key = None
        if isinstance(rotation, dict) and (rotation.get("old_key"), rotation.get("new_key")) == (
            sealing.key_fingerprint,
            current.fingerprint,
        ):
            mac_key = log_chain.open_previous(
                log_chain.mac_key(current),
                rotation.get("previous_key_sealed"),
                sealing.key_fingerprint,
                current.fingerprint,
            )
        if mac_key is None:
            raise AccessLogError(
                f"{loc.display(sealing.rel)}: the access log's sealing state is kept with key "
                f"{sealing.key_fingerprint}, this key is {current.fingerprint}; nothing was written"
            )
    try:
        return auditor_key.evolve(log_seal.open_key(loc, sealing, mac_key), seq - sealing.epoch)
    except log_seal.SealStateError as e:
        raise AccessLogError(f"{e}; nothing was written") from None


def set_up_seal(loc: Location, master: MasterKey) -> auditor_key.LogKey:
    """A new log key (for the auditor) from the log's next seq on; ValueError when it has one."""
    files, _other = _seqs(loc)
    try:
        return log_seal.set_up(loc, log_chain.mac_key(master), master.fingerprint, (max(files) if files else 0) + 1)
    except log_seal.SealStateError as e:
        raise ValueError(str(e)) from None


def head(loc: Location) -> dict | None:
    """The newest row's seq and MAC, and when they were read: the head to record outside the log
    (log_anchors); None when the log is empty or unreadable (`verify` says why)."""
    try:
        rows = tail(loc, 1)
    except (AccessLogError, OSError):
        return None
    at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    return {"seq": int(rows[-1]["seq"]), "mac": rows[-1]["mac"], "at": at} if rows else None


def read(loc: Location) -> list[dict]:
    """Every row, in seq order; AccessLogError naming the first unreadable file."""
    files, _other = _seqs(loc)
    return [_read_row(loc, files[s]) for s in sorted(files)]


def tail(loc: Location, n: int = 20) -> list[dict]:
    """The last n rows, in seq order (reads only their files)."""
    files, _other = _seqs(loc)
    return [_read_row(loc, files[s]) for s in sorted(files)[-n:]] if n > 0 else []
