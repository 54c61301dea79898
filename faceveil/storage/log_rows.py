"""The access log's rows (storage/access_log) as stored: one Parquet file per row under the state
root's access_log/, `<seq, 12 digits>.parquet`; each row's canonical fields, its MAC (HMAC-SHA256
over the previous row's MAC and them) and what its forward-secure tag covers (log_seal)."""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import os
import re
from datetime import timezone

import pyarrow as pa
import pyarrow.parquet as pq

from faceveil.storage.manifests import ACCESS_LOG
from faceveil.storage.paths import Location

FOLDER = "access_log"
GENESIS_MAC = "0" * 64
_NAME = re.compile(r"^(\d{12})\.parquet$")


class AccessLogError(RuntimeError):
    """The access log cannot be read or appended to (damaged, or lost a race too often)."""


def file_name(seq: int) -> str:
    return f"{FOLDER}/{int(seq):012d}.parquet"


def canonical(row: dict) -> bytes:
    """The row's fields other than prev_mac and mac, as sorted compact JSON (time in UTC, microseconds)."""
    t = row["time"]
    fields = {
        "seq": int(row["seq"]),
        "time": t.astimezone(timezone.utc).isoformat(timespec="microseconds"),
        "actor": row["actor"],
        "action": row["action"],
        "reason": row["reason"],
        "probe_sha256": row["probe_sha256"],
        "matched": list(row["matched"] or []),
        "key_fingerprint": row["key_fingerprint"],
        "details_json": row["details_json"],
    }
    return json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def payload(row: dict) -> bytes:
    """What a row's forward-secure tag covers: its fields, prev_mac and mac."""
    return b"\x00".join((canonical(row), str(row["prev_mac"]).encode(), str(row["mac"]).encode()))


def mac(key: bytes, row: dict) -> str:
    """HMAC-SHA256(key, prev_mac bytes + canonical JSON), hex. ValueError when prev_mac is not hex."""
    return hmac.new(key, bytes.fromhex(row["prev_mac"]) + canonical(row), hashlib.sha256).hexdigest()


# ---------------------------------------------------------------- files


def seqs(loc: Location) -> tuple[dict[int, str], list[str]]:
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


def read_row(loc: Location, rel: str) -> dict:
    """The single row of one log file; AccessLogError naming the file when it cannot be read."""
    try:
        t = pq.read_table(io.BytesIO(loc.read_bytes(rel)), schema=ACCESS_LOG)
    except Exception as e:  # truncated, garbage, wrong schema: all the same to the caller
        raise AccessLogError(f"{loc.display(rel)}: unreadable access-log file ({type(e).__name__})") from None
    if t.num_rows != 1:
        raise AccessLogError(f"{loc.display(rel)}: holds {t.num_rows} rows, an access-log file holds one")
    return t.to_pylist()[0]


def encode(row: dict) -> bytes:
    buf = io.BytesIO()
    pq.write_table(pa.Table.from_pylist([row], schema=ACCESS_LOG), buf, compression="zstd")
    return buf.getvalue()


def dumps(details: dict) -> str:
    return json.dumps(details, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def details(row: dict) -> dict:
    """A row's details (empty when they do not parse)."""
    try:
        d = json.loads(row.get("details_json") or "{}")
    except (TypeError, ValueError):
        return {}
    return d if isinstance(d, dict) else {}
