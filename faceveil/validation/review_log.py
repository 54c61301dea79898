"""The review actions of an archive (`faceveil review`) as the report lists them: its exemption log,
read from the access log (every action there is logged before it acts)."""

from __future__ import annotations

from faceveil.storage import access_log
from faceveil.storage.log_rows import FOLDER
from faceveil.storage.paths import Location

PREFIX = "review-"


def review_actions(state: Location) -> list[dict]:
    """One entry per review action (its intent row), with its outcome; an unreadable log is shown, not hidden."""
    try:
        rows = access_log.read(state) if state.exists(FOLDER) else []
    except Exception as e:
        return [{"seq": None, "action": "unreadable", "reason": str(e)}]
    rows = [r for r in rows if str(r["action"]).startswith(PREFIX)]
    outcome = {access_log.details(r).get("intent_seq"): r for r in rows}
    out = []
    for r in rows:
        d = access_log.details(r)
        if d.get("outcome") != "intent":
            continue
        done = outcome.get(r["seq"])
        result = access_log.details(done) if done is not None else {}
        out.append(
            {
                "seq": r["seq"],
                "time": str(r["time"]),
                "actor": r["actor"],
                "action": r["action"][len(PREFIX) :],
                "targets": list((done or {}).get("matched") or r["matched"] or []),
                "reason": r["reason"],
                "outcome": result.get("outcome") or "no outcome row",
                "error": result.get("error"),
            }
        )
    return out
