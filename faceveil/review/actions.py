"""What a reviewer does, each logged in the access log before it acts (ops/logged: an intent row,
then the outcome): look at an original frame, add a face the machine missed (a confirmed manual
track), release a withheld media as a false alarm, or keep it withheld. Every one needs the key
(the log's rows are MACed with it) and a non-empty reason; nothing is done when the row cannot be
written."""

from __future__ import annotations

import os
import tempfile
from datetime import datetime, timezone

from faceveil.ops.logged import actor, logged
from faceveil.review.frames import Archive, media_row, read_frame, source
from faceveil.storage import manifests, manual_tracks
from faceveil.storage.keys import MasterKey

ORIGINAL, ADD_FACE, RELEASE, KEEP = "review-original", "review-add-face", "review-release", "review-keep"
ACTIONS = (ORIGINAL, ADD_FACE, RELEASE, KEEP)


def refresh_report(state) -> str | None:
    """The latest run's report rendered again with every review action so far (its exemption log);
    the report's path, or None when the archive has no report yet."""
    from faceveil.validation.report import load_report, write_report
    from faceveil.validation.review_log import review_actions

    if not state.exists("reports/latest.json"):
        return None
    report = load_report(state)
    report["review"] = review_actions(state)
    return write_report(state, report)["html"]


class KeyNeeded(PermissionError):
    """The review server was started without the key: nothing can be logged, so nothing is done."""


def _checked(master: MasterKey | None, reason: str | None, what: str) -> str:
    if master is None:
        raise KeyNeeded(f"{what} needs the key: start `faceveil review` with --key (or $FACEVEIL_KEY)")
    reason = (reason or "").strip()
    if not reason:
        raise ValueError(f"{what}: a reason is required (it goes into the access log)")
    return reason


def original_frame(archive: Archive, master: MasterKey | None, media_id: str, frame: int, reason: str | None):
    """The original frame (RGB) from the source, read only once its access-log row is written."""
    reason = _checked(master, reason, "showing an original frame")
    row = media_row(archive.state, media_id)
    with logged(
        archive.state,
        master,
        ORIGINAL,
        reason,
        targets=[f"{media_id}@{int(frame)}"],
        details={"path": row["rel_path"], "frame": int(frame)},
    ):
        return read_frame(
            source(archive.state, row["run_id"]), row["rel_path"], row["kind"], int(frame), archive.scratch
        )


def add_face(
    archive: Archive,
    master: MasterKey | None,
    media_id: str,
    boxes: dict[int, list[float]],
    seed_frame: int,
    reason: str | None,
) -> int:
    """Stores a confirmed manual track of `media_id` (who, when, why); its track id. The media's row
    stops counting as done (even a published or released one), so the next run of the archive
    anonymizes it again with the track, masked always, through the same leak gate."""
    reason = _checked(master, reason, "adding a face")
    media_row(archive.state, media_id)
    with logged(
        archive.state,
        master,
        ADD_FACE,
        reason,
        targets=[media_id],
        details={"frames": len(boxes), "seed_frame": int(seed_frame)},
    ) as out:
        track = manual_tracks.add(archive.state, media_id, boxes, seed_frame, actor(), reason)
        out.matched, out.details = [f"{media_id}:{track}"], {"track_id": track, "frames": len(boxes)}
        row = media_row(archive.state, media_id)  # no longer done as it was: the next run does it again
        manifests.write_part(
            archive.state,
            "media",
            media_id,
            [
                {
                    **row,
                    "work_hash": None,
                    "notes": list(row.get("notes") or [])
                    + [f"manual track {track} added in review: to be anonymized again"],
                }
            ],
        )
    return track


def release(archive: Archive, master: MasterKey | None, media_id: str, reason: str | None) -> dict:
    """A withheld media released as a false alarm: its output moves from quarantine to the public
    tree and its row says `released`, by whom and why. Refused without a reason or for a media that
    is not withheld."""
    reason = _checked(master, reason, "releasing a withheld media")
    row = media_row(archive.state, media_id)
    if row["status"] != "leaked" or not row.get("quarantine_path") or not archive.state.exists(row["quarantine_path"]):
        raise ValueError(f"{row['rel_path']}: not withheld (status {row['status']}): nothing to release")
    who = actor()
    with logged(
        archive.state,
        master,
        RELEASE,
        reason,
        targets=[media_id],
        details={"path": row["rel_path"], "gate": row["reason"]},
    ):
        out_rel = row["quarantine_path"].removeprefix("quarantine/")
        fd, tmp = tempfile.mkstemp(dir=archive.scratch, suffix=os.path.splitext(out_rel)[1])
        os.close(fd)
        try:
            with (
                archive.state.local_file(row["quarantine_path"], archive.scratch) as local,
                open(local, "rb") as f,
                open(tmp, "wb") as g,
            ):
                g.write(f.read())
            archive.dest.commit_file(tmp, out_rel)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
        when = datetime.now(timezone.utc).isoformat(timespec="seconds")
        new = {
            **row,
            "status": "released",
            "reason": f"released by {who} at {when}: {reason}",
            "output_path": out_rel,
            "quarantine_path": None,
            "notes": list(row.get("notes") or []) + [f"withheld before release: {row['reason']}"],
        }
        manifests.write_part(archive.state, "media", media_id, [new])
        archive.state.remove(row["quarantine_path"])
    return new


def keep(archive: Archive, master: MasterKey | None, media_id: str, reason: str | None) -> dict:
    """A withheld media kept withheld, on the record (its row gains a note naming who and why)."""
    reason = _checked(master, reason, "keeping a media withheld")
    row = media_row(archive.state, media_id)
    if row["status"] != "leaked":
        raise ValueError(f"{row['rel_path']}: not withheld (status {row['status']})")
    with logged(archive.state, master, KEEP, reason, targets=[media_id], details={"path": row["rel_path"]}):
        new = {**row, "notes": list(row.get("notes") or []) + [f"kept withheld by {actor()}: {reason}"]}
        manifests.write_part(archive.state, "media", media_id, [new])
    return new
