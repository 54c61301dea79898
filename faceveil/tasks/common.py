"""Helpers shared by the per-media tasks: cached models, scratch space, manifest rows."""
from __future__ import annotations

import functools
import json
import os
import tempfile
from dataclasses import asdict
from functools import lru_cache

from faceveil.config import AnonymizeConfig
from faceveil.models.anonymizers import Anonymizer, MaskSettings, create_anonymizer
from faceveil.models.detectors import Detector, DetectorSettings, create_detector
from faceveil.storage.paths import Location
from faceveil.tasks.jobs import MediaItem, MediaResult


@lru_cache(maxsize=4)
def detector(name: str, settings: DetectorSettings) -> Detector:
    """One detector per worker process and settings (loading the weights once)."""
    return create_detector(name, settings)


def face_finder(config: AnonymizeConfig):
    """The run's way of finding the faces of a frame, `find(rgb) -> Detections`: the main detector,
    then the second look at the frame with those faces anonymized. On a second pass the leak gate's
    detectors work beside the main one in both looks: what the gate would confirm as a face is
    masked."""
    from faceveil.models.detectors.base import Ensemble
    from faceveil.models.second_look import second_look

    extra = [detector(name, s) for name, s in config.extra_detectors()]
    first = Ensemble([detector(config.detector, config.detector_settings()), *extra])
    look = config.second_look_settings()
    again = Ensemble([detector(config.detector, look), *extra]) if look else (first if extra else None)
    anon = anonymizer(config.method, config.mask_settings())

    def find(rgb):
        d = first.detect(rgb)
        return second_look(rgb, d, anon, again) if again else d
    return find


@lru_cache(maxsize=2)
def embedder(name: str):
    from faceveil.models.embedders import create_embedder

    return create_embedder(name)


def track_templates(config: AnonymizeConfig, faces, media_id: str, det_rows, frame_time) -> list[dict]:
    """The identity templates of a media's tracks, with each track's place and time (for the index)."""
    if faces is None:
        return []
    from faceveil.storage.vault import key_id

    tpl = faces.templates(embedder(config.embedder), config.template_view)
    if not tpl:
        return []
    df = det_rows.to_pandas()
    out = []
    for t in tpl:
        d = df[df.track_id == t["track_id"]].sort_values("frame_index")
        boxes = [[int(f), round(float(a), 1), round(float(b), 1), round(float(c), 1), round(float(e), 1)]
                 for f, a, b, c, e in zip(d.frame_index, d.x1, d.y1, d.x2, d.y2)]
        first, last = int(d.frame_index.min()), int(d.frame_index.max())
        out.append({**t, "first_frame": first, "last_frame": last, "t_start_s": frame_time(first),
                    "t_end_s": frame_time(last), "boxes_json": json.dumps(boxes),
                    "vault_key_ids": [key_id(media_id, t["track_id"])]})
    return out


@lru_cache(maxsize=8)
def anonymizer(name: str, mask: MaskSettings) -> Anonymizer:
    return create_anonymizer(name, mask)


def locations(config: AnonymizeConfig) -> tuple[Location, Location]:
    return Location(config.src, config.storage_options), Location(config.dest, config.storage_options)


def scratch(config: AnonymizeConfig) -> str:
    path = config.scratch_dir or os.path.join(tempfile.gettempdir(), "faceveil-scratch")
    os.makedirs(path, exist_ok=True)
    return path


def base_row(config: AnonymizeConfig, item: MediaItem, run_id: str) -> dict:
    """A media manifest row with the fields every outcome has."""
    return {
        "media_id": item.media_id, "rel_path": item.rel, "kind": item.kind, "run_id": run_id,
        "input_fingerprint": item.fingerprint, "detector": config.detector, "method": config.method,
        "settings_json": json.dumps(config.output_settings(), sort_keys=True),
        "settings_hash": config.settings_hash(),
        "notes": ["second pass after the leak gate: twice the detections, with the gate's detectors too"]
        if config.second_pass else [],
    }


def record_failure(config: AnonymizeConfig, item: MediaItem, run_id: str, reason: str) -> MediaResult:
    """Writes (replaces) the media's manifest row as failed, with the reason."""
    from faceveil.storage import manifests

    row = {**base_row(config, item, run_id), "status": "failed", "reason": reason}
    manifests.write_part(locations(config)[1], "media", item.media_id, [row])
    return MediaResult(row)


def streams_json(streams) -> str:
    return json.dumps([asdict(s) for s in streams])


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
        anon.apply(rgb, dets, keys)
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


def open_vault(config: AnonymizeConfig) -> AnonymizeConfig:
    """For a reversible run: the vault's key must be this run's (refused before anything is
    written); a new archive gets its vault keyinfo. Returns the config whose lock seals for this
    archive (its id)."""
    from dataclasses import replace

    from faceveil.storage.vault import check_key

    info = check_key(locations(config)[1], config.vault_lock.fingerprint, create=config.vault_lock)
    return replace(config, vault_lock=replace(config.vault_lock, archive_id=info.get("archive_id")))


def leak_verdict(config: AnonymizeConfig, audit) -> str | None:
    """Why a media's output must be withheld: the leak gate found unmasked faces in its checked
    frames, more than `max_leak` of the faces there; None when it may be published."""
    leaks = audit.leaks() if audit is not None else []
    if not leaks or audit.leak_rate() <= config.max_leak:
        return None
    shown = "; ".join(f"frame {x['frame_index']}: " + ", ".join(
        f"{f['detector']} {f['score']:.2f} at {[round(v) for v in f['box']]}" for f in x["faces"][:3]) for x in leaks[:5])
    n = sum(len(x["faces"]) for x in leaks)
    return (f"leak gate: {n} unmasked face(s) in checked frame(s) {[x['frame_index'] for x in leaks]} "
            f"({100 * audit.leak_rate():.1f}% of the faces there, --max-leak {100 * config.max_leak:g}%): {shown}")


def commit_output(dest: Location, tmp: str, rel: str, local: str, vault, withheld: bool = False) -> tuple[str, str]:
    """(input SHA-256, output SHA-256) after committing: the vault first, so the originals are safe
    before the anonymized output appears. A `withheld` output goes to DEST/_faceveil/quarantine/
    instead, never into the public tree (an earlier output there is taken down), and keeps no vault."""
    from faceveil.hashing import sha256_file

    in_sha, out_sha = sha256_file(local), sha256_file(tmp)
    if withheld:
        dest.remove(rel)
        dest.commit_file(tmp, quarantine_path(rel))
        return in_sha, out_sha
    if vault is not None:
        vault.commit(dest)
    dest.commit_file(tmp, rel)
    dest.remove(quarantine_path(rel))  # a withheld earlier output of it is obsolete now
    return in_sha, out_sha


def outcome(config: AnonymizeConfig, out_rel: str, withheld: str | None, audit) -> dict:
    """The media row's verdict: published at `out_rel`, or withheld by the leak gate (in quarantine)."""
    frames = [x["frame_index"] for x in audit.leaks()] if audit is not None else []
    if withheld:
        return {"status": "leaked", "reason": withheld, "output_path": None, "quarantine_path": quarantine_path(out_rel),
                "leak_frames": frames}
    return {"status": "ok", "reason": None, "output_path": out_rel, "quarantine_path": None, "leak_frames": frames}


def quarantine_path(rel: str) -> str:
    from faceveil.storage.paths import META_DIR

    return f"{META_DIR}/quarantine/{rel}"


def clean_up(tmp: str, vault) -> None:
    """Removes what a media task leaves behind, whatever happened: temp output, an uncommitted vault
    file (downloaded inputs go with their `Location.local_file` block)."""
    if vault is not None:
        vault.discard()
    if os.path.exists(tmp):
        os.unlink(tmp)


def vault_fields(vault) -> dict:
    """The media row's vault columns (None when the run is not reversible)."""
    if vault is None:
        return {"vault_entries": None, "vault_bytes": None, "key_fingerprint": None}
    return {"vault_entries": vault.n_entries, "vault_bytes": vault.bytes_sealed, "key_fingerprint": vault.lock.fingerprint}


def media_keepers(config: AnonymizeConfig, item: MediaItem) -> tuple:
    """(vault writer, face collector) of one media: each None when the run does not keep it."""
    from faceveil.models.track_templates import TrackFaces
    from faceveil.storage.vault import VaultWriter

    vault = VaultWriter(config.vault_lock, item.media_id, scratch(config)) if config.reversible else None
    return vault, (TrackFaces() if config.index else None)


def write_media_manifests(dest: Location, item: MediaItem, detection_rows, row: dict,
                          templates: list[dict] | None = None, audit=None) -> MediaResult:
    """Detections, tracks, the audit's checks, then the media row last: the row is what marks the
    media finished."""
    from faceveil.storage import manifests

    manifests.write_part(dest, "detections", item.media_id, detection_rows)
    manifests.write_part(dest, "tracks", item.media_id, manifests.track_rows(item.media_id, detection_rows))
    if audit is not None:
        manifests.write_part(dest, "audit/frames", item.media_id, audit.frame_rows())
        manifests.write_part(dest, "audit/faces", item.media_id, audit.face_rows())
        manifests.write_part(dest, "audit/media", item.media_id, [{
            "media_id": item.media_id, "run_id": row["run_id"], "frames_checked": len(audit.frame_rows()),
            "seconds": audit.seconds, **audit.media_metrics()}])
    manifests.write_part(dest, "media", item.media_id, [row])
    return MediaResult(row, templates or [], audit.embeddings() if audit is not None else None)


def remove_segments(config: AnonymizeConfig, run_id: str) -> None:
    """Takes away the run's video segments that a crashed task left in DEST/_faceveil/segments/."""
    from faceveil.storage.paths import META_DIR

    dest = locations(config)[1]
    folder = dest.path(f"{META_DIR}/segments/{run_id}")
    try:
        if dest.fs.exists(folder):
            dest.fs.rm(folder, recursive=True)
    except OSError:
        pass


def prepare_models(config: AnonymizeConfig) -> None:
    """Builds derived weights (the int8 detector) once, in this process, before workers need them."""
    if config.detector == "centerface":
        from faceveil.models.detectors.centerface import prepare

        prepare(config.detector_settings())


def warm_worker(config: AnonymizeConfig) -> None:
    """Run once on each worker before work arrives: imports the task modules, loads the detector."""
    import faceveil.tasks.prefect_tasks  # noqa: F401

    detector(config.detector, config.detector_settings())
    if look := config.second_look_settings():
        detector(config.detector, look)
    anonymizer(config.method, config.mask_settings())
    if config.audit_every_s > 0:  # the checks: the leak gate's detectors, the embedder, the metrics' imports
        threads = config.detector_settings().threads
        for name, threshold in config.audit_settings().gate:
            detector(name, DetectorSettings(threshold=threshold, threads=threads))
        embedder(config.embedder).load()
        import skimage.metrics  # noqa: F401


def index_secret(config: AnonymizeConfig, key) -> "object":
    """The index's template protection for an indexing run (the key must be the vault's)."""
    from faceveil.models.embedders import EMBEDDERS
    from faceveil.tasks.index import index_keys

    if key is None or not key.matches(config.vault_lock.fingerprint):
        raise ValueError("indexing identities needs the master key itself (the one the vault is locked with)")
    return index_keys(key, EMBEDDERS.get(config.embedder).dim)


def index_archive(config: AnonymizeConfig, results, keys) -> int:
    from faceveil.tasks.index import index_templates

    return index_templates(locations(config)[1], results, keys, config.embedder, config.vault_lock.fingerprint,
                           config.template_view)
