"""The deep leak check of an archive's published media (`faceveil check`, the check-nightly
deployment): every media published (ok) or released by a reviewer whose output changed since it was
last checked is checked again (validation/deep_check), and the results replace the state root's
checks/deep.parquet (atomically, after each media, so an interrupted check loses nothing). A media
is keyed by its output's SHA-256 in the media manifest and its file's fingerprint (size and times,
or ETag), so a file replaced in DEST behind the manifest is checked again; a checked file whose
SHA-256 is not the manifest's is an error (the output changed after its run)."""

from __future__ import annotations

import shutil
import tempfile
from datetime import datetime, timezone

from faceveil.hashing import sha256_file
from faceveil.storage import manifests
from faceveil.storage.media import MediaError
from faceveil.storage.paths import Location
from faceveil.validation.deep_check import DEEP_FRAMES, KEY, TABLE, check_output, recorded_regions
from faceveil.validation.deep_check import stored_results as read_results
from faceveil.validation.leak_bound import leak_upper_bound

CHECKED = ("ok", "released")  # the statuses whose output is public
__all__ = ["read_results", "run_check", "line", "total_line", "totals"]


def _unchanged(dest: Location, row: dict, before: dict | None, frames: int) -> bool:
    """Whether the media's last check still stands: same output (SHA-256 and file), no error, as many frames."""
    if before is None or before.get("error") or (before["frames_asked"] or 0) < frames:
        return False
    if row.get("output_sha256") and before["output_sha256"] != row["output_sha256"]:
        return False
    try:
        return before["output_fingerprint"] == dest.fingerprint(row["output_path"])
    except OSError:  # gone: checked again (an error naming it)
        return False


def _published(state: Location) -> list[dict]:
    rows = manifests.read_table(state, "media").to_pylist()
    return sorted((r for r in rows if r["status"] in CHECKED and r.get("output_path")), key=lambda r: r["rel_path"])


def _check_one(dest: Location, state: Location, row: dict, frames: int, scratch: str) -> dict:
    out = {
        "media_id": row["media_id"],
        "rel_path": row["rel_path"],
        "status": row["status"],
        "output_sha256": None,
        "output_fingerprint": None,
        "checked_at": datetime.now(timezone.utc),
        "frames_asked": frames,
        "error": None,
    }
    try:
        out["output_fingerprint"] = dest.fingerprint(row["output_path"])
        regions = recorded_regions(state, row)
        with dest.local_file(row["output_path"], scratch) as local:
            out["output_sha256"] = sha256_file(local)
            out.update(check_output(local, row["kind"], regions, frames))
        if row.get("output_sha256") and out["output_sha256"] != row["output_sha256"]:
            out["error"] = (
                f"{dest.display(row['output_path'])}: its SHA-256 is not the media manifest's "
                "(the file changed after its run)"
            )
    except (MediaError, OSError, ValueError) as e:  # recorded; the check as a whole then fails
        out.update(
            frames_checked=0,
            faces_checked=0,
            leaks=0,
            upper_95=1.0,
            leak_frames=[],
            leak_boxes=None,
            seconds=0.0,
            error=f"{dest.display(row['output_path'])}: {e}",
        )
    return out


def totals(rows: list[dict]) -> dict:
    """The run-level figures over deep-check rows: faces checked, leaks, their 95 % upper bound."""
    faces, leaks = sum(r["faces_checked"] or 0 for r in rows), sum(r["leaks"] or 0 for r in rows)
    return {
        "media": len(rows),
        "frames_checked": sum(r["frames_checked"] or 0 for r in rows),
        "faces_checked": faces,
        "leaks": leaks,
        "upper_95": leak_upper_bound(leaks, faces),
        "leaked": [r["rel_path"] for r in rows if r["leaks"]],
        "errors": [r["error"] for r in rows if r.get("error")],
    }


def run_check(dest: Location, state: Location, frames: int = DEEP_FRAMES, say=None) -> dict:
    """Checks every published or released media not checked since its output last changed (or checked
    with fewer frames asked); {rows (one per published media, `fresh` where checked now), checked,
    seconds, and the totals over all rows}. Nothing is written when nothing was checked."""
    if frames <= 0:
        raise ValueError(f"--frames must be at least 1, got {frames}")
    if not state.exists("media"):
        raise FileNotFoundError(f"{state.display('media')}: no media manifest (is {dest.url} an anonymized archive?)")
    previous = {r["media_id"]: r for r in read_results(state)}
    published = _published(state)
    rows, checked, seconds = [], 0, 0.0
    scratch = tempfile.mkdtemp(prefix="faceveil-check-")
    try:
        for row in published:
            before = previous.get(row["media_id"])
            if _unchanged(dest, row, before, frames):
                rows.append({**before, "fresh": False})
                continue
            result = _check_one(dest, state, row, frames, scratch)
            rows.append({**result, "fresh": True})
            checked += 1
            seconds += result["seconds"]
            if say is not None:
                say(line(rows[-1]))
            done = {r["media_id"] for r in rows}
            kept = [
                previous[p["media_id"]] for p in published if p["media_id"] in previous and p["media_id"] not in done
            ]
            _write(state, kept + rows)
        if not checked and set(previous) - {r["media_id"] for r in published}:
            _write(state, rows)  # media no longer published leave the table
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return {"rows": rows, "checked": checked, "seconds": round(seconds, 3), **totals(rows)}


def _write(state: Location, rows: list[dict]) -> None:
    rows = sorted(({k: v for k, v in r.items() if k != "fresh"} for r in rows), key=lambda r: r["rel_path"])
    manifests.write_part(state, TABLE, KEY, rows)


def line(r: dict) -> str:
    """One media's result as one line."""
    if r.get("error") and not r["frames_checked"]:
        return f"{r['rel_path']}: not checked: {r['error']}"
    when = "" if r.get("fresh", True) else f" (unchanged since {r['checked_at']:%Y-%m-%d %H:%M} UTC)"
    leaks = f"{r['leaks']} leak(s) in frame(s) {r['leak_frames']}" if r["leaks"] else "0 leaks"
    return (
        f"{r['rel_path']}: {r['frames_checked']} frames, {r['faces_checked']} faces checked, {leaks}, "
        f"leak rate < {100 * r['upper_95']:.2f} % (95 %){when}" + (f"; error: {r['error']}" if r.get("error") else "")
    )


def total_line(t: dict) -> str:
    return (
        f"total: {t['media']} media, {t['frames_checked']} frames, {t['faces_checked']} faces checked, "
        f"{t['leaks']} leak(s), leak rate < {100 * t['upper_95']:.2f} % (95 % upper bound)"
    )
