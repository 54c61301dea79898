"""Run bookkeeping: the run row and the run summary.
`write_summary` is over 60 lines: the run row and the summary are two dict literals of the same figures,
one field a line."""

from __future__ import annotations

import json
from datetime import datetime, timezone

from faceveil.version import __version__
from faceveil.config import AnonymizeConfig
from faceveil.storage import manifests
from faceveil.pipeline.jobs import MediaItem, MediaResult
from faceveil.pipeline.places import state_of


def new_run_id() -> str:
    """A run id that sorts by start time: 20261123T143000Z-1a2b3c."""
    import uuid

    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ-") + uuid.uuid4().hex[:6]


def write_summary(
    config: AnonymizeConfig,
    run_id: str,
    started: datetime,
    items: list[MediaItem],
    results: list[MediaResult],
    unsupported: list[tuple[str, str]],
) -> dict:
    """Writes the run row and the state root's summaries/<run_id>.json (and summary.json, the latest)."""
    dest = state_of(config)
    finished = datetime.now(timezone.utc)
    ok = [r.row for r in results if r.ok]
    failed = [r.row for r in results if not r.ok]
    n_skipped = sum(i.done for i in items)
    status = "failed" if failed else "ok"
    manifests.write_part(
        dest,
        "runs",
        run_id,
        [
            {
                "run_id": run_id,
                "flow": "anonymize_archive",
                "started_at": started,
                "finished_at": finished,
                "src": config.src,
                "dest": config.dest,
                "settings_json": json.dumps(config.output_settings(), sort_keys=True),
                "faceveil_version": __version__,
                "n_media": len(items),
                "n_ok": len(ok),
                "n_failed": len(failed),
                "n_skipped": n_skipped,
                "status": status,
            }
        ],
    )
    frames = sum(r.get("frames_in") or 0 for r in ok)
    seconds = (finished - started).total_seconds()
    summary = {
        "run_id": run_id,
        "status": status,
        "src": config.src,
        "dest": config.dest,
        "state": config.state,
        "started_at": started.isoformat(),
        "finished_at": finished.isoformat(),
        "seconds": round(seconds, 3),
        "settings": config.output_settings(),
        "leak_gate": {"on": config.gate_off() is None, "off_because": config.gate_off()},
        "media": len(items),
        "ok": len(ok),
        "failed": len(failed),
        "leaked": sum(r["status"] == "leaked" for r in failed),
        "already_done": n_skipped,
        "frames": frames,
        "faces": sum(r.get("n_faces") or 0 for r in ok),
        "frames_per_second": round(frames / seconds, 2) if seconds > 0 else None,
        "failures": [
            {
                "path": r["rel_path"],
                "status": r["status"],
                "reason": r["reason"],
                **({"quarantine": r["quarantine_path"]} if r.get("quarantine_path") else {}),
            }
            for r in failed
        ],
        "not_media": [{"path": p, "reason": why} for p, why in unsupported],
        "outputs": [r["output_path"] for r in ok],
        "manifests": {t: f"{t}/" for t in manifests.TABLES},
    }
    data = json.dumps(summary, indent=2, default=str).encode()
    dest.write_bytes(f"summaries/{run_id}.json", data)
    dest.write_bytes("summary.json", data)
    return summary
