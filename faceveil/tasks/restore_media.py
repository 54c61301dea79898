"""Restore: choose tracks of an anonymized archive, open their sealed originals with the key and
paste them back into each media (everyone else stays anonymized); one media per task.
`restore_media` is over 60 lines: images and videos share one try (the scratch file, the refused
regions, the count restored) and its report lists every field, one a line."""

from __future__ import annotations

import json
import os
import posixpath
import time
import uuid
from dataclasses import dataclass, field, fields

import numpy as np

from faceveil.settings_parts import ClusterSettings, part_from
from faceveil.pipeline.places import scratch
from faceveil.storage import manifests
from faceveil.storage.keys import MasterKey
from faceveil.storage.media import MediaError, probe_video, read_image, transcode_video, write_image
from faceveil.storage.paths import Location
from faceveil.storage.state import check_restore_out, find_state, state_location
from faceveil.storage.sealing import SealError
from faceveil.storage.vault import archive_id, check_master, entry_frames, open_region, track_keys


CLUSTER_KEYS = frozenset(f.name for f in fields(ClusterSettings))


@dataclass
class RestoreConfig:
    """archive: an anonymized DEST (its private state root: `state`, found as every command finds it
    when not given); out: where restored media go (same tree), apart from DEST and the state root.
    Choose by track ('MEDIA:TRACK', MEDIA a media id or relative path), by media (relative paths), or all.
    Where its tasks run is a `cluster` part, anonymize's (`of` takes its keys flat: workers, dask_address...)."""

    archive: str
    out: str
    tracks: list[str] = field(default_factory=list)
    media: list[str] = field(default_factory=list)
    all: bool = False
    cluster: ClusterSettings = field(default_factory=ClusterSettings)
    storage_options: dict = field(default_factory=dict)
    crf: int = 10  # restored lossy video is evidence: encoded well above the archive's quality
    tracking_uri: str | None = None  # MLflow; default: the archive's (sqlite under its state root)
    mlflow_artifacts: str | None = None  # MLflow's artifact root (as AnonymizeConfig's)
    state: str | None = None

    @classmethod
    def of(cls, archive: str, out: str, **flat) -> RestoreConfig:
        """The config of flat keys: its own fields and the cluster part's (an unknown key is a TypeError naming it)."""
        cluster = {k: flat.pop(k) for k in CLUSTER_KEYS & flat.keys()}
        return cls(archive, out, cluster=ClusterSettings(**cluster), **flat)

    def __post_init__(self):
        self.cluster = part_from(ClusterSettings, self.cluster)  # a dict after Prefect's parameters
        if self.state is None:
            self.state = find_state(self.archive, None, self.storage_options).url
        check_restore_out(self.out, self.archive, self.state)
        if not (self.tracks or self.media or self.all):
            raise ValueError("choose what to restore: --track MEDIA:TRACK, --media PATH or --all")
        address = self.cluster.dask_address
        if address and not address.startswith("tls://"):
            raise ValueError(
                f"restore sends the chosen tracks' data keys to the workers: {address} would carry "
                "them in clear; use a tls:// scheduler (with certificates), or the local cluster"
            )

    def state_location(self) -> Location:
        return state_location(self.state, self.storage_options)


class TrackKeys(dict):
    """track id -> data key of the tracks to restore in one media (and `archive`, the vault's archive
    id they are bound to). Shown without the keys."""

    def __init__(self, keys=(), archive: str | None = None):
        super().__init__(keys)
        self.archive = archive

    def __repr__(self) -> str:
        return f"TrackKeys(tracks={sorted(self)})"

    __str__ = __repr__


@dataclass
class RestoreJob:
    media_id: str
    rel: str  # the anonymized output's path in the archive (and the restored one's in OUT)
    kind: str
    settings: dict
    keys: TrackKeys
    forgotten: list[int]


def ok_media(archive: Location) -> dict[str, dict]:
    rows = manifests.read_table(archive, "media").to_pylist()
    return {r["media_id"]: r for r in rows if r["status"] == "ok"}


def resolve_tracks(archive: Location, refs: list[str]) -> dict[str, set[int]]:
    """'MEDIA:TRACK' references -> media id -> tracks; an unknown media or track is an error."""
    media = ok_media(archive)
    by_path = {r["rel_path"]: m for m, r in media.items()}
    out: dict[str, set[int]] = {}
    for ref in refs:
        name, sep, track = ref.rpartition(":")
        if not sep or not track.lstrip("-").isdigit():
            raise ValueError(f"track {ref!r}: expected MEDIA:TRACK (media id or relative path, then track number)")
        mid = name if name in media else by_path.get(name)
        if mid is None:
            raise ValueError(f"track {ref!r}: no anonymized media {name!r} in {archive.url}")
        out.setdefault(mid, set()).add(int(track))
    return out


def plan_restore(config: RestoreConfig, master: MasterKey) -> list[RestoreJob]:
    """The media to restore with the data keys of their chosen tracks. A wrong key is refused here,
    before anything is written."""
    archive = config.state_location()
    check_master(archive, master)
    media = ok_media(archive)
    chosen: dict[str, set[int] | None] = {}
    if config.all:
        chosen = {m: None for m, r in media.items() if r.get("vault_entries") is not None}
    for rel in config.media:
        hits = [m for m, r in media.items() if r["rel_path"] == rel.strip("/")]
        if not hits:
            raise ValueError(f"media {rel!r}: not an anonymized media of {archive.url}")
        chosen[hits[0]] = None
    for mid, tracks in resolve_tracks(archive, config.tracks).items():
        if chosen.get(mid, set()) is not None:
            chosen[mid] = (chosen.get(mid) or set()) | tracks
    jobs = []
    for mid, tracks in chosen.items():
        r = media[mid]
        if r.get("vault_entries") is None:
            raise ValueError(f"{r['rel_path']}: anonymized without --reversible, nothing to restore")
        keys, forgotten = track_keys(archive, master, mid, tracks)
        if tracks is not None and (missing := tracks - set(keys) - set(forgotten)):
            raise ValueError(f"{r['rel_path']}: no track {sorted(missing)} in the vault")
        jobs.append(
            RestoreJob(
                mid,
                r["output_path"],
                r["kind"],
                json.loads(r["settings_json"]),
                TrackKeys(keys, archive_id(archive)),
                forgotten,
            )
        )
    return jobs


def paste_originals(rgb: np.ndarray, entries: list[dict], keys: TrackKeys, problems: list[str]) -> int:
    """Puts the chosen tracks' original regions back into `rgb` in place, except where another
    (not chosen) face's region lies; returns how many regions were restored."""
    others = [e for e in entries if e["track_id"] not in keys]
    n = 0
    for e in entries:
        if e["track_id"] not in keys:
            continue
        try:
            region = open_region(e, keys[e["track_id"]], keys.archive)
        except SealError as err:
            problems.append(str(err))
            continue
        x1, y1, x2, y2 = e["x1"], e["y1"], e["x2"], e["y2"]
        keep = np.ones((y2 - y1, x2 - x1), bool)
        for o in others:  # someone else's face overlapping this one stays anonymized
            ox1, oy1, ox2, oy2 = max(o["x1"], x1), max(o["y1"], y1), min(o["x2"], x2), min(o["y2"], y2)
            if ox2 > ox1 and oy2 > oy1:
                keep[oy1 - y1 : oy2 - y1, ox1 - x1 : ox2 - x1] = False
        rgb[y1:y2, x1:x2][keep] = region[keep]
        n += 1
    return n


def restore_media(config: RestoreConfig, job: RestoreJob) -> dict:
    """Writes OUT/<rel>: the anonymized media with the chosen tracks' originals put back."""
    t0 = time.perf_counter()
    public, archive = Location(config.archive, config.storage_options), config.state_location()
    out = Location(config.out, config.storage_options)
    work = scratch(config)
    problems: list[str] = []
    restored = 0
    tmp = os.path.join(work, f"{uuid.uuid4().hex}{posixpath.splitext(job.rel)[1]}")
    lossless = bool(job.settings.get("lossless"))
    try:
        with public.local_file(job.rel, work) as local:
            frames = entry_frames(archive, job.media_id, work)
            if job.kind == "image":
                rgb, meta = read_image(local)
                for _, entries in frames:
                    restored += paste_originals(rgb, entries, job.keys, problems)
                write_image(tmp, rgb, meta, lossless=lossless)
            else:
                info = probe_video(local)
                touched = {
                    f
                    for f, es in entry_frames(archive, job.media_id, work, columns=["frame_index", "track_id"])
                    if any(e["track_id"] in job.keys for e in es)
                }
                pending = iter(frames)
                current = next(pending, None)

                def edit(i: int, rgb: np.ndarray) -> np.ndarray:
                    nonlocal current, restored
                    while current is not None and current[0] < i:
                        current = next(pending, None)
                    if current is not None and current[0] == i:
                        restored += paste_originals(rgb, current[1], job.keys, problems)
                    return rgb

                transcode_video(
                    local,
                    tmp,
                    info,
                    edit,
                    only=touched,
                    lossless=lossless,
                    crf=min(config.crf, int(job.settings.get("crf", 18))),
                    preset=job.settings.get("preset", "veryfast"),
                )
            frames.close()  # its downloaded copy goes now
        out.commit_file(tmp, job.rel)
        status, reason = ("ok" if not problems else "partial"), None
    except (MediaError, FileNotFoundError) as e:
        status, reason = "failed", getattr(e, "reason", None) or str(e)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return {
        "media_id": job.media_id,
        "path": job.rel,
        "status": status,
        "reason": reason,
        "tracks": sorted(job.keys),
        "forgotten_tracks": job.forgotten,
        "regions_restored": restored,
        "refused_regions": problems,
        "seconds": round(time.perf_counter() - t0, 3),
    }


def write_restore_report(config: RestoreConfig, run_id: str, report_json: str) -> str:
    """restore/<run>.json in the archive's state root: what was restored, what was refused; key
    fingerprint only."""
    rel = f"restore/{run_id}.json"
    config.state_location().write_bytes(rel, report_json.encode())
    return rel
