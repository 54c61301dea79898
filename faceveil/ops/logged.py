"""Accesses logged before they act: `logged` appends an intent row (action, reason, actor, targets),
runs the action, then appends its outcome row ('done', or 'failed' with the reason). When the intent
row cannot be written the action does not run. Outcome rows name their intent row's seq. The head
the action left (its last row's seq and MAC) is printed on stderr and recorded outside the state
root (storage/log_anchors), so a later cut or rewrite of those rows shows in `access-log --verify`."""

from __future__ import annotations

import contextlib
import getpass
import os
import sys
from dataclasses import dataclass, field

from faceveil.storage import access_log, log_anchors
from faceveil.storage.keys import MasterKey
from faceveil.storage.paths import Location

INTENT, DONE, FAILED = "intent", "done", "failed"
_MAX_REASON = 500


def actor() -> str:
    """Who acts: $FACEVEIL_ACTOR, else the user name."""
    return os.environ.get("FACEVEIL_ACTOR") or getpass.getuser()


@dataclass
class Outcome:
    """What the action reports for its outcome row: tracks touched, details, a failure without an
    exception (`error`), and `hand_over_to`, the new key once a rotation has moved the vault to it."""

    matched: list[str] = field(default_factory=list)
    details: dict = field(default_factory=dict)
    error: str | None = None
    hand_over_to: MasterKey | None = None


def _why(e: BaseException) -> str:
    text = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
    return text if len(text) <= _MAX_REASON else text[: _MAX_REASON - 3] + "..."


@contextlib.contextmanager
def logged(
    archive: Location,
    master: MasterKey,
    action: str,
    reason: str,
    *,
    targets=(),
    probe_sha256: str | None = None,
    details: dict | None = None,
):
    """Yields an `Outcome` to fill in once the intent row is written (an error there stops here:
    AccessLogError, BadKeyError). An exception inside is logged as 'failed' and re-raised."""
    who = actor()
    intent = access_log.append(
        archive,
        master,
        actor=who,
        action=action,
        reason=reason,
        probe_sha256=probe_sha256,
        matched=targets,
        details={**(details or {}), "outcome": INTENT},
    )
    out = Outcome()
    try:
        yield out
    except BaseException as e:
        out.error = "interrupted" if isinstance(e, KeyboardInterrupt) else _why(e)
        last = intent
        try:
            last = _finish(archive, master, action, reason, who, probe_sha256, intent["seq"], out)
        except Exception as log_error:  # the action's own error is the one to raise
            e.add_note(f"its outcome row could not be written to the access log: {log_error}")
        anchor(archive, last, action)
        raise
    try:
        done = _finish(archive, master, action, reason, who, probe_sha256, intent["seq"], out)
    except (access_log.AccessLogError, ValueError) as e:
        anchor(archive, intent, action)
        raise access_log.AccessLogError(
            f"{action} was done (intent row seq {intent['seq']}), but its outcome row could not be written: {e}"
        ) from None
    anchor(archive, done, action)


def anchor(archive: Location, row: dict, action: str) -> None:
    """Prints the head `row` left on stderr and records it in $FACEVEIL_HOME/anchors (never fails the action)."""
    head = f"access log: seq {row['seq']}, head mac {row['mac']}"
    try:
        print(f"{head} (anchored in {log_anchors.record(archive, row, action)})", file=sys.stderr)
    except Exception as e:  # an anchor is extra evidence: the action stands without it
        print(f"{head} (not anchored: {type(e).__name__}: {getattr(e, 'strerror', None) or e})", file=sys.stderr)


def _finish(archive, master, action, reason, who, probe_sha256, intent_seq, out: Outcome) -> dict:
    details = {**out.details, "outcome": FAILED if out.error else DONE, "intent_seq": intent_seq}
    if out.error:
        details["error"] = out.error
    if out.hand_over_to is not None:
        return access_log.hand_over(
            archive, master, out.hand_over_to, actor=who, reason=reason, matched=out.matched, details=details
        )
    return access_log.append(
        archive,
        master,
        actor=who,
        action=action,
        reason=reason,
        probe_sha256=probe_sha256,
        matched=out.matched,
        details=details,
    )


def restore_outcome(report: dict, out: Outcome) -> None:
    """What a restore run did, for its outcome row: 'failed' unless every media restored whole."""
    media = report["media"]
    out.matched = sorted({f"{m['media_id']}:{t}" for m in media if m.get("media_id") for t in m.get("tracks", [])})
    out.details.update(report=report["run_id"], ok=report["ok"], partial=report["partial"], failed=report["failed"])
    bad = [
        f"{m['path']}: {m['status']} ({m.get('reason') or str(len(m.get('refused_regions') or [])) + ' regions refused'})"
        for m in media
        if m["status"] != "ok"
    ]
    if bad:
        out.error = f"{len(bad)} of {len(media)} media not restored whole: " + "; ".join(bad)


def pairs(rows: list[dict]) -> list[tuple[dict, dict | None]]:
    """(intent row, its outcome row or None) for every intent row, in seq order."""
    outcomes = {
        access_log.details(r).get("intent_seq"): r
        for r in rows
        if access_log.details(r).get("outcome") in (DONE, FAILED)
    }
    return [(r, outcomes.get(r["seq"])) for r in rows if access_log.details(r).get("outcome") == INTENT]
