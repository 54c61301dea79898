"""The access log under the state root's access_log/: one Parquet file per row, `<seq, 12 digits>.parquet`,
written once and never rewritten. Each row carries an HMAC-SHA256 over the previous row's MAC and its
own fields, so a removed, edited, re-keyed, reordered or renamed row shows up in `verify`. Removing the
newest rows leaves no trace in the chain itself: compare the last seq with one recorded elsewhere (a
run report) for that. Rows carry key fingerprints, never keys.

Key rotation (`hand_over`) keeps the chain: the MAC key of each master key's span of rows is derived
from that master key, and the rotation row that starts the new key's span names the old and new
fingerprints, is MACed under both, and carries the old span's MAC key sealed for the new one
(`log_chain`). `verify` with the newest key walks back through every rotation; the retired key can
append nothing after its span, nor alter a row before it unnoticed (the rotation row pins its MAC)."""
from __future__ import annotations

import hashlib
import hmac
import io
import json
import os
import re
from datetime import datetime, timezone

import pyarrow as pa
import pyarrow.parquet as pq

from faceveil.storage import log_chain
from faceveil.storage.keys import BadKeyError, MasterKey
from faceveil.storage.log_chain import ROTATION
from faceveil.storage.manifests import ACCESS_LOG
from faceveil.storage.paths import Location


FOLDER = "access_log"
GENESIS_MAC = "0" * 64
_NAME = re.compile(r"^(\d{12})\.parquet$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_MAX_TRIES = 1000


class AccessLogError(RuntimeError):
    """The access log cannot be read or appended to (damaged, or lost a race too often)."""


def file_name(seq: int) -> str:
    return f"{FOLDER}/{int(seq):012d}.parquet"


def _canonical(row: dict) -> bytes:
    """The row's fields other than prev_mac and mac, as sorted compact JSON (time in UTC, microseconds)."""
    t = row["time"]
    fields = {
        "seq": int(row["seq"]), "time": t.astimezone(timezone.utc).isoformat(timespec="microseconds"),
        "actor": row["actor"], "action": row["action"], "reason": row["reason"],
        "probe_sha256": row["probe_sha256"], "matched": list(row["matched"] or []),
        "key_fingerprint": row["key_fingerprint"], "details_json": row["details_json"],
    }
    return json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _mac(key: bytes, row: dict) -> str:
    """HMAC-SHA256(key, prev_mac bytes + canonical JSON), hex. ValueError when prev_mac is not hex."""
    return hmac.new(key, bytes.fromhex(row["prev_mac"]) + _canonical(row), hashlib.sha256).hexdigest()


# ---------------------------------------------------------------- files


def _seqs(loc: Location) -> tuple[dict[int, str], list[str]]:
    """{seq: relative path} of the log's files by name, and the names that are not log files
    (temporary files of an append in progress, names starting with '.', are left out)."""
    folder = loc.path(FOLDER)
    if loc.is_local:
        if os.path.lexists(folder) and not os.path.isdir(folder):
            raise AccessLogError(f"{folder}: not a folder, so no access log can be kept here")
        try:
            names = os.listdir(folder) if os.path.isdir(folder) else []
        except OSError as e:
            raise AccessLogError(f"{folder}: cannot read the access log ({e.strerror or e})") from None
    else:
        loc.fs.invalidate_cache(folder)
        names = [p.rsplit("/", 1)[-1] for p in loc.fs.ls(folder, detail=False)] if loc.fs.exists(folder) else []
    found, other = {}, []
    for name in sorted(names):
        m = _NAME.match(name)
        if m:
            found[int(m.group(1))] = f"{FOLDER}/{name}"
        elif not name.startswith("."):
            other.append(f"{FOLDER}/{name}")
    return found, other


def _read_row(loc: Location, rel: str) -> dict:
    """The single row of one log file; AccessLogError naming the file when it cannot be read."""
    try:
        t = pq.read_table(io.BytesIO(loc.read_bytes(rel)), schema=ACCESS_LOG)
    except Exception as e:  # truncated, garbage, wrong schema: all the same to the caller
        raise AccessLogError(f"{loc.display(rel)}: unreadable access-log file ({type(e).__name__})") from None
    if t.num_rows != 1:
        raise AccessLogError(f"{loc.display(rel)}: holds {t.num_rows} rows, an access-log file holds one")
    return t.to_pylist()[0]


def _encode(row: dict) -> bytes:
    buf = io.BytesIO()
    pq.write_table(pa.Table.from_pylist([row], schema=ACCESS_LOG), buf, compression="zstd")
    return buf.getvalue()


# ---------------------------------------------------------------- API


def _dumps(details: dict) -> str:
    return json.dumps(details, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


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
    return {"actor": actor, "action": action, "reason": reason, "probe_sha256": probe_sha256,
            "matched": [str(m) for m in matched], "key_fingerprint": fingerprint, "details_json": details_json}


def append(loc: Location, master: MasterKey, *, actor: str, action: str, reason: str,
           probe_sha256: str | None = None, matched=(), details: dict | None = None) -> dict:
    """Adds one row (seq = last seq + 1, chained to the last row's MAC) and returns it.
    The row's file is created exclusively (locally, or by a conditional write on S3), so concurrent
    appenders never share a seq: the loser tries the next one. Refuses an empty reason, actor or action, a key other than the log's, and
    a log whose last file is unreadable (run `verify`); AccessLogError when it cannot be written."""
    row = _new_row(master.fingerprint, actor, action, reason, probe_sha256, matched, details)
    key = log_chain.mac_key(master)

    def sign(r: dict) -> None:
        r["mac"] = _mac(key, r)

    return _commit(loc, master, row, sign)


def hand_over(loc: Location, old: MasterKey, new: MasterKey, *, actor: str, reason: str, matched=(),
              details: dict | None = None) -> dict:
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

    return _commit(loc, old, row, sign)


def _commit(loc: Location, current: MasterKey, row: dict, sign) -> dict:
    """Writes `row` as the next seq once the log is found to be kept with `current`; `sign` sets its MAC."""
    for _ in range(_MAX_TRIES):
        files, _other = _seqs(loc)
        if files:
            last = max(files)
            prev = _read_row(loc, files[last])
            if not hmac.compare_digest(str(prev.get("key_fingerprint") or "").encode(), current.fingerprint.encode()):
                raise BadKeyError(f"{loc.display(FOLDER)}: the access log is kept with key "
                                  f"{prev.get('key_fingerprint')}, this key is {current.fingerprint}; "
                                  "nothing was written")
            seq, prev_mac = last + 1, prev["mac"]
        else:
            seq, prev_mac = 1, GENESIS_MAC
        row.update(seq=seq, time=datetime.now(timezone.utc), prev_mac=prev_mac)
        try:
            sign(row)
        except ValueError:
            raise AccessLogError(f"{loc.display(files[last])}: malformed MAC; run verify") from None
        data, rel = _encode(row), file_name(seq)
        try:
            if loc.create_bytes(rel, data):
                return dict(row)
        except OSError as e:
            raise AccessLogError(f"{loc.display(FOLDER)}: cannot write the access log "
                                 f"({type(e).__name__}: {e.strerror or e}); nothing was written") from None
    raise AccessLogError(f"{loc.display(FOLDER)}: no free seq after {_MAX_TRIES} tries (too many concurrent appenders)")


def read(loc: Location) -> list[dict]:
    """Every row, in seq order; AccessLogError naming the first unreadable file."""
    files, _other = _seqs(loc)
    return [_read_row(loc, files[s]) for s in sorted(files)]


def tail(loc: Location, n: int = 20) -> list[dict]:
    """The last n rows, in seq order (reads only their files)."""
    files, _other = _seqs(loc)
    return [_read_row(loc, files[s]) for s in sorted(files)[-n:]] if n > 0 else []


def details(row: dict) -> dict:
    """A row's details (empty when they do not parse)."""
    try:
        d = json.loads(row.get("details_json") or "{}")
    except (TypeError, ValueError):
        return {}
    return d if isinstance(d, dict) else {}


def verify(loc: Location, master: MasterKey) -> list[str]:
    """Problems found in the log, each naming its seq or file; empty when it is intact. `master` is
    the newest key: rows before a rotation row are checked with the key it carries. Reports removed
    rows (a gap in seq, a prev_mac that is not the previous row's MAC), edited rows and rows written
    with another key (MAC mismatch), files whose name disagrees with their seq, unreadable files and
    stray files in the folder."""
    files, other = _seqs(loc)
    found = [(0, f"{loc.display(rel)}: not an access-log file name") for rel in other]
    rows: dict[int, dict] = {}
    for seq in sorted(files):
        rel = files[seq]
        try:
            row = _read_row(loc, rel)
        except AccessLogError as e:
            found.append((seq, f"seq {seq}: {e}"))
            continue
        rows[seq] = row
        if row["seq"] != seq:
            found.append((seq, f"seq {seq}: {loc.display(rel)} holds seq {row['seq']} (renamed or moved)"))
    found += _check_macs(loc, files, rows, master)
    top = max(files) if files else 0
    for seq in range(1, top + 1):
        if seq not in files:
            found.append((seq, f"seq {seq}: missing (row removed)"))
            continue
        if seq not in rows:
            continue  # unreadable, already reported
        expected = GENESIS_MAC if seq == 1 else (rows[seq - 1]["mac"] if seq - 1 in rows else None)
        prev_mac = str(rows[seq]["prev_mac"]).encode()
        if expected is not None and not hmac.compare_digest(prev_mac, str(expected).encode()):
            before = "the genesis value" if seq == 1 else f"the MAC of seq {seq - 1}"
            found.append((seq, f"seq {seq}: prev_mac is not {before} (a row was removed or replaced)"))
    return [msg for _seq, msg in sorted(found, key=lambda p: p[0])]


def _mac_ok(key: bytes, row: dict, mac) -> bool:
    try:
        return hmac.compare_digest(_mac(key, row).encode(), str(mac).encode())
    except (ValueError, TypeError, AttributeError):
        return False


def _check_macs(loc: Location, files: dict, rows: dict, master: MasterKey) -> list[tuple[int, str]]:
    """Every row's MAC, newest first, with the key of its span: the newest key's, then the key each
    rotation row carries for the span before it."""
    found = []
    key, fp = log_chain.mac_key(master), master.fingerprint
    for seq in sorted(rows, reverse=True):
        row = rows[seq]
        if key is None:
            found.append((seq, f"seq {seq}: cannot be checked (the rotation row after it that holds its key "
                               "does not open)"))
            continue
        if not _mac_ok(key, row, row["mac"]):
            kept = row.get("key_fingerprint")
            why = (f"written with key {kept}, the chain is kept with key {fp} here" if kept != fp
                   else "row edited, or MAC forged")
            found.append((seq, f"seq {seq}: MAC mismatch in {loc.display(files[seq])} ({why})"))
        rotation = details(row).get(ROTATION) if row.get("action") == "rotate-key" else None
        if not isinstance(rotation, dict):
            continue
        if rotation.get("new_key") != fp:
            found.append((seq, f"seq {seq}: rotation row to key {rotation.get('new_key')}, but the rows after "
                               f"it are kept with key {fp}"))
            continue
        old_key, old_fp = log_chain.open_previous(key, rotation.get("previous_key_sealed"),
                                                   rotation.get("old_key"), fp), rotation.get("old_key")
        if old_key is None:
            found.append((seq, f"seq {seq}: the rotation row's sealed key of the span before it does not open "
                               "(edited)"))
            key = None
            continue
        unsigned = {**row, "details_json": _dumps({**details(row), ROTATION: {
            k: v for k, v in rotation.items() if k != "old_mac"}})}
        if not _mac_ok(old_key, unsigned, rotation.get("old_mac")):
            found.append((seq, f"seq {seq}: the rotation row's MAC under the old key {old_fp} does not match"))
        key, fp = old_key, old_fp
    return found
