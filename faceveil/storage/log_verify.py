"""Checking the access log (storage/access_log): the MAC chain with the newest master key, walking
back through key rotations (log_chain); with the auditor's log key, the rows' forward-secure tags
and the sealing state (log_seal); the heads recorded outside the log (log_anchors)."""

from __future__ import annotations

import hmac

from faceveil.storage import log_anchors, log_chain, log_seal
from faceveil.storage.auditor_key import LogKey
from faceveil.storage.keys import MasterKey
from faceveil.storage.log_chain import ROTATION
from faceveil.storage.log_rows import (
    GENESIS_MAC,
    AccessLogError,
    details,
    dumps as _dumps,
    mac as _mac,
    payload as _payload,
    read_row as _read_row,
    seqs as _seqs,
)
from faceveil.storage.paths import Location


def verify(loc: Location, master: MasterKey | None, *, log_key: LogKey | None = None, anchors=()) -> list[str]:
    """Problems found in the log, each naming its seq or file; empty when it is intact. `master` is
    the newest key: rows before a rotation row are checked with the key it carries. Reports removed
    rows (a gap in seq, a prev_mac that is not the previous row's MAC), edited rows and rows written
    with another key (MAC mismatch), files whose name disagrees with their seq, unreadable files and
    stray files in the folder. With the auditor's `log_key` (`master` may then be None: the MACs
    are not checked), rows whose forward-secure tag fails (re-signed by a key holder) and a sealing
    state ahead of the log (rows cut); without it, rows left untagged after tagged ones. With
    `anchors` (log_anchors.gather), a log shorter than one, or a row with another MAC."""
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
    if master is not None:
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
    try:
        found += log_seal.check(loc, rows, top, log_key, _payload) if log_key is not None else _untagged(loc, rows)
    except log_seal.SealStateError as e:
        found.append((top + 1, str(e)))
    found += log_anchors.check(rows, top, anchors, unreadable=set(files) - set(rows))
    return [msg for _seq, msg in sorted(found, key=lambda p: p[0])]


def _untagged(loc: Location, rows: dict) -> list[tuple[int, str]]:
    """Without the log key: rows without a tag after the first tagged one, or tags and no sealing state."""
    tagged = [s for s in sorted(rows) if rows[s].get("fs_tag")]
    if not tagged:
        return []
    found = [
        (
            s,
            f"seq {s}: no forward-secure tag, though the rows before it have one (the log's sealing "
            "state was removed?)",
        )
        for s in sorted(rows)
        if s > tagged[0] and not rows[s].get("fs_tag")
    ]
    if not log_seal.states(loc):
        found.append(
            (
                max(rows) + 1,
                f"{loc.display(log_seal.FOLDER)}: the log's sealing state is missing, though "
                "its rows are tagged (removed?)",
            )
        )
    return found


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
            found.append(
                (seq, f"seq {seq}: cannot be checked (the rotation row after it that holds its key does not open)")
            )
            continue
        if not _mac_ok(key, row, row["mac"]):
            kept = row.get("key_fingerprint")
            why = (
                f"written with key {kept}, the chain is kept with key {fp} here"
                if kept != fp
                else "row edited, or MAC forged"
            )
            found.append((seq, f"seq {seq}: MAC mismatch in {loc.display(files[seq])} ({why})"))
        rotation = details(row).get(ROTATION) if row.get("action") == "rotate-key" else None
        if not isinstance(rotation, dict):
            continue
        if rotation.get("new_key") != fp:
            found.append(
                (
                    seq,
                    f"seq {seq}: rotation row to key {rotation.get('new_key')}, but the rows after "
                    f"it are kept with key {fp}",
                )
            )
            continue
        old_key, old_fp = (
            log_chain.open_previous(key, rotation.get("previous_key_sealed"), rotation.get("old_key"), fp),
            rotation.get("old_key"),
        )
        if old_key is None:
            found.append(
                (seq, f"seq {seq}: the rotation row's sealed key of the span before it does not open (edited)")
            )
            key = None
            continue
        unsigned = {
            **row,
            "details_json": _dumps({**details(row), ROTATION: {k: v for k, v in rotation.items() if k != "old_mac"}}),
        }
        if not _mac_ok(old_key, unsigned, rotation.get("old_mac")):
            found.append((seq, f"seq {seq}: the rotation row's MAC under the old key {old_fp} does not match"))
        key, fp = old_key, old_fp
    return found
