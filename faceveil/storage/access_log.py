"""The access log under DEST/_faceveil/access_log/: one Parquet file per search, restore or forget,
`<seq, 12 digits>.parquet`, written once and never rewritten. Each row carries an HMAC-SHA256 (key
derived from the master key for "access-log") over the previous row's MAC and its own fields, so a
removed, edited, re-keyed or renamed row shows up in `verify`. Removing the newest rows leaves no
trace in the chain itself: compare the last seq with one recorded elsewhere (a run report) for that.
Rows carry the key's fingerprint, never the key."""
from __future__ import annotations

import hashlib
import hmac
import io
import json
import os
import re
import uuid
from datetime import datetime, timezone

import pyarrow as pa
import pyarrow.parquet as pq

from faceveil.storage.keys import BadKeyError, MasterKey
from faceveil.storage.manifests import ACCESS_LOG
from faceveil.storage.paths import META_DIR, Location


FOLDER = f"{META_DIR}/access_log"
GENESIS_MAC = "0" * 64
_NAME = re.compile(r"^(\d{12})\.parquet$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_MAX_TRIES = 1000


class AccessLogError(RuntimeError):
    """The access log cannot be read or appended to (damaged, or lost a race too often)."""


def file_name(seq: int) -> str:
    return f"{FOLDER}/{int(seq):012d}.parquet"


def _mac_key(master: MasterKey) -> bytes:
    return master.derive("access-log")


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
        names = os.listdir(folder) if os.path.isdir(folder) else []
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


def _create_local(loc: Location, rel: str, data: bytes) -> bool:
    """Creates rel whole or not at all; False when it already exists (another appender took the seq)."""
    target = loc.path(rel)
    folder = os.path.dirname(target)
    os.makedirs(folder, exist_ok=True)
    tmp = os.path.join(folder, f".{os.path.basename(target)}.tmp-{uuid.uuid4().hex}")
    try:
        with open(tmp, "xb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(tmp, target)  # atomic, and fails if target exists
        except FileExistsError:
            return False
        except OSError:  # a filesystem without hard links: exclusive create, then write
            try:
                fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                return False
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
        return True
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


# ---------------------------------------------------------------- API


def append(loc: Location, master: MasterKey, *, actor: str, action: str, reason: str,
           probe_sha256: str | None = None, matched=(), details: dict | None = None) -> dict:
    """Adds one row (seq = last seq + 1, chained to the last row's MAC) and returns it.
    Locally the file is created exclusively, so concurrent appenders never share a seq; on S3 it is
    a plain atomic write. Refuses an empty reason, actor or action, a key other than the log's, and
    a log whose last file is unreadable (run `verify`)."""
    for name, value in (("reason", reason), ("actor", actor), ("action", action)):
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"access log: {name} must be a non-empty string")
    if probe_sha256 is not None:
        probe_sha256 = str(probe_sha256).lower()
        if not _SHA256.match(probe_sha256):
            raise ValueError("access log: probe_sha256 must be 64 hex digits")
    try:
        details_json = json.dumps(details if details is not None else {}, sort_keys=True,
                                  separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise ValueError(f"access log: details must be JSON-serialisable ({e})") from None
    key = _mac_key(master)
    row = {"actor": actor, "action": action, "reason": reason, "probe_sha256": probe_sha256,
           "matched": [str(m) for m in matched], "key_fingerprint": master.fingerprint,
           "details_json": details_json}
    for _ in range(_MAX_TRIES):
        files, _other = _seqs(loc)
        if files:
            last = max(files)
            prev = _read_row(loc, files[last])
            if not hmac.compare_digest(str(prev.get("key_fingerprint") or "").encode(), master.fingerprint.encode()):
                raise BadKeyError(f"{loc.display(FOLDER)}: the access log is kept with key "
                                  f"{prev.get('key_fingerprint')}, this key is {master.fingerprint}; "
                                  "nothing was written")
            seq, prev_mac = last + 1, prev["mac"]
        else:
            seq, prev_mac = 1, GENESIS_MAC
        row.update(seq=seq, time=datetime.now(timezone.utc), prev_mac=prev_mac)
        try:
            row["mac"] = _mac(key, row)
        except ValueError:
            raise AccessLogError(f"{loc.display(files[last])}: malformed MAC; run verify") from None
        data, rel = _encode(row), file_name(seq)
        if not loc.is_local:
            loc.write_bytes(rel, data)
            return dict(row)
        if _create_local(loc, rel, data):
            return dict(row)
    raise AccessLogError(f"{loc.display(FOLDER)}: no free seq after {_MAX_TRIES} tries (too many concurrent appenders)")


def read(loc: Location) -> list[dict]:
    """Every row, in seq order; AccessLogError naming the first unreadable file."""
    files, _other = _seqs(loc)
    return [_read_row(loc, files[s]) for s in sorted(files)]


def tail(loc: Location, n: int = 20) -> list[dict]:
    """The last n rows, in seq order (reads only their files)."""
    files, _other = _seqs(loc)
    return [_read_row(loc, files[s]) for s in sorted(files)[-n:]] if n > 0 else []


def verify(loc: Location, master: MasterKey) -> list[str]:
    """Problems found in the log, each naming its seq or file; empty when it is intact. Reports
    removed rows (a gap in seq, a prev_mac that is not the previous row's MAC), edited rows and rows
    written with another key (MAC mismatch), files whose name disagrees with their seq, unreadable
    files and stray files in the folder."""
    key = _mac_key(master)
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
        try:
            ok = hmac.compare_digest(_mac(key, row).encode(), str(row["mac"]).encode())
        except (ValueError, TypeError, AttributeError):
            ok = False
        if not ok:
            fp = row.get("key_fingerprint")
            why = (f"written with key {fp}, this key is {master.fingerprint}" if fp != master.fingerprint
                   else "row edited, or MAC forged")
            found.append((seq, f"seq {seq}: MAC mismatch in {loc.display(rel)} ({why})"))
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
