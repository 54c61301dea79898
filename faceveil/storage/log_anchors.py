"""The access log's heads recorded outside its state root, so a cut or rewrite of the newest rows
shows: every keyed command appends the head it left, {seq, mac, time, action}, to
$FACEVEIL_HOME/anchors/<archive id>.jsonl (default ~/.faceveil; archives without an id: a hash of
the state root's URL), and every run's report holds the head it saw (`access_log_head`, in
the state root's reports/ and its MLflow run). `check` compares the log with them: a log shorter
than an anchor was cut, a row whose MAC is not the anchored one was rewritten.

Anchors are plain records, no secret: they help only as far as they live out of reach of whoever
would cut the log. Someone who controls the state root, this $FACEVEIL_HOME and the MLflow store
can rewrite them too; anchors in the state root's own reports/ only catch someone who forgot them."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
from datetime import datetime, timezone
from pathlib import Path

from faceveil.home import home
from faceveil.storage.paths import Location

FOLDER = "anchors"  # under $FACEVEIL_HOME
REPORTS = "reports"  # the state root's run reports (validation.report.REPORTS)
_MAC = re.compile(r"^[0-9a-f]{64}$")
_ID = re.compile(r"^[0-9a-zA-Z_-]{8,64}$")


def _names(loc: Location) -> list[str]:
    """The anchors files' names of the archive whose state root is `loc`: its archive id's (where it
    has one; written to), then its state root URL's."""
    from faceveil.storage.vault import archive_id

    try:
        aid = archive_id(loc)
    except (OSError, ValueError):
        aid = None
    url = f"{'file' if loc.is_local else 's3'}:{loc.root}"
    names = [f"archive-{aid}"] if isinstance(aid, str) and _ID.match(aid) else []
    return names + ["state-" + hashlib.sha256(url.encode()).hexdigest()[:32]]


def anchor_file(loc: Location) -> Path:
    return home() / FOLDER / f"{_names(loc)[0]}.jsonl"


def record(loc: Location, row: dict, action: str) -> Path:
    """Appends the head `row` (its seq and mac) to the archive's anchors file; OSError when it cannot."""
    path = anchor_file(loc)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    line = json.dumps(
        {
            "seq": int(row["seq"]),
            "mac": str(row["mac"]),
            "action": action,
            "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        },
        sort_keys=True,
    )
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    with os.fdopen(fd, "a") as f:
        f.write(line + "\n")
    return path


def _anchor(d, source: str, action: str | None = None, time=None) -> dict | None:
    """A well-formed anchor from a record, or None."""
    if not isinstance(d, dict) or not isinstance(d.get("seq"), int) or isinstance(d.get("seq"), bool):
        return None
    mac = d.get("mac")
    if d["seq"] < 1 or not isinstance(mac, str) or not _MAC.match(mac):
        return None
    return {
        "seq": d["seq"],
        "mac": mac,
        "action": str(action or d.get("action") or "?"),
        "time": str(time or d.get("time") or "?"),
        "source": source,
    }


def gather(loc: Location) -> list[dict]:
    """Every anchor of the archive: its anchors files' lines and its run reports' heads
    (unreadable lines and reports are passed over)."""
    out = []
    for name in _names(loc):
        path = home() / FOLDER / f"{name}.jsonl"
        try:
            lines = path.read_text().splitlines() if path.is_file() else []
        except OSError:
            lines = []
        for line in lines:
            try:
                a = _anchor(json.loads(line), str(path))
            except ValueError:
                a = None
            out += [a] if a else []
    try:
        reports = [r for r in loc.list_files(REPORTS) if r.endswith(".json") and not r.endswith("/latest.json")]
    except OSError:
        reports = []
    for rel in reports:
        try:
            report = json.loads(loc.read_bytes(rel))
        except (OSError, ValueError):
            continue
        head = report.get("access_log_head") if isinstance(report, dict) else None
        a = _anchor(
            head,
            loc.display(rel),
            f"{report.get('flow', 'run')} {report.get('run_id')}",
            head.get("at") if isinstance(head, dict) else None,
        )
        out += [a] if a else []
    return out


def check(rows: dict[int, dict], last: int, anchors, unreadable=()) -> list[tuple[int, str]]:
    """(seq, problem): the log (`rows` by seq, ending at `last`; `unreadable`: seqs whose files are
    there but do not read) shorter than the newest anchor, an anchored row missing or with another MAC."""
    found: list[tuple[int, str]] = []
    if not anchors:
        return found
    newest = max(anchors, key=lambda a: a["seq"])
    if newest["seq"] > last:
        found.append(
            (
                last + 1,
                f"cut: the log ends at seq {last} but an anchor recorded at {newest['time']} by "
                f"{newest['action']} says seq {newest['seq']}",
            )
        )
    seen = set()
    for a in sorted(anchors, key=lambda a: a["seq"]):
        if a["seq"] > last or a["seq"] in unreadable or (a["seq"], a["mac"]) in seen:
            continue
        seen.add((a["seq"], a["mac"]))
        row = rows.get(a["seq"])
        if row is None:
            found.append(
                (a["seq"], f"removed: row seq {a['seq']}, anchored at {a['time']} by {a['action']}, is missing")
            )
        elif not hmac.compare_digest(str(row.get("mac")).encode(), a["mac"].encode()):
            found.append(
                (
                    a["seq"],
                    f"rewritten: row seq {a['seq']}'s MAC differs from the anchored one "
                    f"(recorded at {a['time']} by {a['action']})",
                )
            )
    return found
