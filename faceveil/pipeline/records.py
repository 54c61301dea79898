"""A media's manifest rows: the fields every outcome has, a failure, the vault columns, the
identity templates of its tracks, and the manifests written with the media row last."""

from __future__ import annotations

import json
from dataclasses import asdict

from faceveil.config import AnonymizeConfig
from faceveil.pipeline.work_hash import work_hash
from faceveil.pipeline.jobs import MediaItem, MediaResult
from faceveil.pipeline.places import scratch, state_of
from faceveil.storage.paths import Location


def base_row(config: AnonymizeConfig, item: MediaItem, run_id: str) -> dict:
    """A media manifest row with the fields every outcome has."""
    return {
        "media_id": item.media_id,
        "rel_path": item.rel,
        "kind": item.kind,
        "run_id": run_id,
        "input_fingerprint": item.fingerprint,
        "detector": config.detection.detector,
        "method": config.masking.method,
        "settings_json": json.dumps(config.output_settings(), sort_keys=True),
        "work_hash": work_hash(config),
        "notes": ([second_pass_note(config)] if config.settings.second_pass else []) + _manual_note(item),
    }


def _manual_note(item: MediaItem) -> list[str]:
    """What the media row says about faces a reviewer added (faceveil review)."""
    if not item.manual:
        return []
    tracks = {t for marks in item.manual.values() for t, _ in marks}
    return [f"{len(tracks)} manual track(s) from review masked always ({len(item.manual)} frames)"]


def second_pass_note(config: AnonymizeConfig) -> str:
    """What the leak gate's second pass did, for the media row."""
    extra = [name for name, _ in config.settings.extra_detectors]
    return "second pass after the leak gate: twice the detections, the main detector down to the gate's scores" + (
        f", with {' and '.join(extra)} too" if extra else ""
    )


def record_failure(config: AnonymizeConfig, item: MediaItem, run_id: str, reason: str) -> MediaResult:
    """Writes (replaces) the media's manifest row as failed, with the reason."""
    from faceveil.storage import manifests

    row = {**base_row(config, item, run_id), "status": "failed", "reason": reason}
    manifests.write_part(state_of(config), "media", item.media_id, [row])
    return MediaResult(row)


def streams_json(streams) -> str:
    return json.dumps([asdict(s) for s in streams])


def vault_fields(vault) -> dict:
    """The media row's vault columns (None when the run is not reversible)."""
    if vault is None:
        return {
            "vault_entries": None,
            "vault_bytes": None,
            "key_fingerprint": None,
            "vault_keys_sha256": None,
            "faces_forgotten": None,
        }
    return {
        "vault_entries": vault.n_entries,
        "vault_bytes": vault.bytes_sealed,
        "key_fingerprint": vault.lock.fingerprint,
        "vault_keys_sha256": vault.keys_sha256,
        "faces_forgotten": vault.n_skipped,
    }


def media_keepers(config: AnonymizeConfig, item: MediaItem, forgotten=()) -> tuple:
    """(vault writer, face collector) of one media: each None when the run does not keep it; the
    `forgotten` tracks (forgotten people: tombstones) are kept by neither."""
    from faceveil.models.track_templates import TrackFaces
    from faceveil.storage.vault import VaultWriter

    vault = (
        VaultWriter(config.sealing.vault_lock, item.media_id, scratch(config), skip=forgotten)
        if config.sealed
        else None
    )
    return vault, (TrackFaces(skip=forgotten) if config.sealing.index else None)


def track_templates(kit, faces, media_id: str, det_rows, frame_time) -> list[dict]:
    """The identity templates of a media's tracks, with each track's place and time (for the index)."""
    if faces is None:
        return []
    from faceveil.storage.vault import key_id

    tpl = faces.templates(kit.embedder, kit.settings.template_view)
    if not tpl:
        return []
    df = det_rows.to_pandas()
    out = []
    for t in tpl:
        d = df[df.track_id == t["track_id"]].sort_values("frame_index")
        boxes = [
            [int(f), round(float(a), 1), round(float(b), 1), round(float(c), 1), round(float(e), 1)]
            for f, a, b, c, e in zip(d.frame_index, d.x1, d.y1, d.x2, d.y2)
        ]
        first, last = int(d.frame_index.min()), int(d.frame_index.max())
        out.append(
            {
                **t,
                "first_frame": first,
                "last_frame": last,
                "t_start_s": frame_time(first),
                "t_end_s": frame_time(last),
                "boxes_json": json.dumps(boxes),
                "vault_key_ids": [key_id(media_id, t["track_id"])],
            }
        )
    return out


def write_media_manifests(
    dest: Location, item: MediaItem, detection_rows, row: dict, templates: list[dict] | None = None, check_result=None
) -> MediaResult:
    """Detections, tracks, the checks, then the media row last, into the state root `dest`:
    the row is what marks the media finished."""
    from faceveil.storage import manifests

    manifests.write_part(dest, "detections", item.media_id, detection_rows)
    manifests.write_part(dest, "tracks", item.media_id, manifests.track_rows(item.media_id, detection_rows))
    if check_result is not None:
        manifests.write_part(dest, "checks/frames", item.media_id, check_result.frame_rows())
        manifests.write_part(dest, "checks/faces", item.media_id, check_result.face_rows())
        manifests.write_part(
            dest,
            "checks/media",
            item.media_id,
            [
                {
                    "media_id": item.media_id,
                    "run_id": row["run_id"],
                    "frames_checked": len(check_result.frame_rows()),
                    "seconds": check_result.seconds,
                    **check_result.media_metrics(),
                }
            ],
        )
    manifests.write_part(dest, "media", item.media_id, [row])
    return MediaResult(
        row,
        templates or [],
        check_result.embeddings() if check_result is not None else None,
        leak_families(check_result),
    )


def leak_families(check_result) -> tuple[str, ...]:
    """The detectors whose faces the leak gate found unmasked in a media's checked frames (sorted)."""
    return (
        tuple(sorted({f["detector"] for x in check_result.leaks() for f in x["faces"]}))
        if check_result is not None
        else ()
    )
