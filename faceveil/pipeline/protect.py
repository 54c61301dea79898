"""The fail-closed core: what stands between a face and a viewer. `protect_frame` seals then masks
a frame, blacking it out when masking fails; the leak gate's verdict withholds an output in which
the checks still find a face; `commit_output` publishes (vault first) or quarantines."""

from __future__ import annotations

import functools

from faceveil.models.anonymizers import Anonymizer
from faceveil.storage.paths import Location


def protect_frame(anon: Anonymizer, rgb, dets, frame: int = 0, media_id: str = "", vault=None) -> bool:
    """Seals the original face regions in the vault (when reversible), then anonymizes `rgb` in
    place. Fail closed: if the anonymizer fails, the whole frame is blacked out (returns True); a
    vault failure raises, so no output exists without its originals."""
    h, w = rgb.shape[:2]
    regions = anon.regions(dets, w, h)
    if vault is not None and len(dets):
        for j, (x1, y1, x2, y2) in enumerate(regions):
            if x2 > x1 and y2 > y1:
                vault.seal(frame, int(dets.track_ids[j]), (x1, y1, x2, y2), rgb[y1:y2, x1:x2])
    keys = functools.partial(_region_key, vault, dets, regions, media_id, frame) if anon.needs_key and vault else None
    try:
        anon.apply(rgb, dets, keys, media=media_id)
        return False
    except Exception:  # fail closed: nothing of this frame is shown
        rgb[:] = 0
        return True


def _region_key(vault, dets, regions, media_id: str, frame: int, j: int) -> bytes:
    """The scramble key of detection j's region: from its track's data key (so forgetting the track
    makes its scrambled pixels unrecoverable too)."""
    from faceveil.models.scramble import region_key

    track = int(dets.track_ids[j])
    return region_key(vault.data_key(track), media_id, frame, track, regions[j])


def leak_verdict(max_leak: float, check_result) -> str | None:
    """Why a media's output must be withheld: the leak gate found unmasked faces in its checked
    frames, more than `max_leak` of the faces there; None when it may be published."""
    leaks = check_result.leaks() if check_result is not None else []
    if not leaks or check_result.leak_rate() <= max_leak:
        return None
    shown = "; ".join(
        f"frame {x['frame_index']}: "
        + ", ".join(f"{f['detector']} {f['score']:.2f} at {[round(v) for v in f['box']]}" for f in x["faces"][:3])
        for x in leaks[:5]
    )
    n = sum(len(x["faces"]) for x in leaks)
    return (
        f"leak gate: {n} unmasked face(s) in checked frame(s) {[x['frame_index'] for x in leaks]} "
        f"({100 * check_result.leak_rate():.1f}% of the faces there, --max-leak {100 * max_leak:g}%): {shown}"
    )


def outcome(out_rel: str, withheld: str | None, check_result) -> dict:
    """The media row's verdict: published at `out_rel`, or withheld by the leak gate (in quarantine)."""
    frames = [x["frame_index"] for x in check_result.leaks()] if check_result is not None else []
    if withheld:
        return {
            "status": "leaked",
            "reason": withheld,
            "output_path": None,
            "quarantine_path": quarantine_path(out_rel),
            "leak_frames": frames,
        }
    return {"status": "ok", "reason": None, "output_path": out_rel, "quarantine_path": None, "leak_frames": frames}


def quarantine_path(rel: str) -> str:
    """Where a withheld output goes, in the state root."""
    return f"quarantine/{rel}"


def commit_output(
    dest: Location, state: Location, tmp: str, rel: str, local: str, vault, withheld: bool = False
) -> tuple[str, str]:
    """(input SHA-256, output SHA-256) after committing: the vault first (into the state root), so
    the originals are safe before the anonymized output appears in DEST. A `withheld` output goes to
    the state root's quarantine/ instead, never into the public tree (an earlier output there is
    taken down), and keeps no vault."""
    from faceveil.hashing import sha256_file

    in_sha, out_sha = sha256_file(local), sha256_file(tmp)
    if withheld:
        dest.remove(rel)
        state.commit_file(tmp, quarantine_path(rel))
        return in_sha, out_sha
    if vault is not None:
        vault.commit(state)
    dest.commit_file(tmp, rel)
    state.remove(quarantine_path(rel))  # a withheld earlier output of it is obsolete now
    return in_sha, out_sha
