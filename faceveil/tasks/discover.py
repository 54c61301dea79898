"""Discover the media of an archive and which of them a previous run already finished."""

from __future__ import annotations

import posixpath

from faceveil.config import AnonymizeConfig
from faceveil.hashing import sha256_file
from faceveil.pipeline.work_hash import work_hash
from faceveil.storage import manual_tracks
from faceveil.storage.manifests import read_part, write_part
from faceveil.storage.paths import META_DIR, Location, PathError
from faceveil.pipeline.jobs import MediaItem, media_kind
from faceveil.pipeline.places import locations, state_of


def _prefix_inside_src(src: Location, dest: Location) -> str | None:
    """The relative prefix of DEST (or the state root) when it lies inside SRC (so outputs are never
    re-read as inputs)."""
    if src.is_local != dest.is_local:
        return None
    root = src.root.rstrip("/") + "/"
    d = dest.root.rstrip("/") + "/"
    if d == root:
        raise ValueError(f"{dest.url}: destination must differ from the source folder")
    return posixpath.relpath(d, root) if d.startswith(root) else None


def is_done(src: Location, dest: Location, state: Location, item: MediaItem, work: str) -> bool:
    """True when a manifest row says this input was anonymized with these settings, version and
    weights (`work`, pipeline/work_hash) and its output is there. An input whose fingerprint moved
    (touched, copied, restored from backup) counts as the same when its SHA-256 is the one the row
    recorded; the row then takes the new fingerprint, so the next run need not read it again."""
    part = read_part(state, "media", item.media_id)
    if part is None or part.num_rows != 1:
        return False
    row = part.to_pylist()[0]
    if not (
        row["status"] in ("ok", "released")
        and row["work_hash"] == work
        and row["output_path"] is not None
        and dest.exists(row["output_path"])
    ):
        return False
    if row["input_fingerprint"] == item.fingerprint:
        return True
    if not (src.is_local and row.get("input_sha256")) or sha256_file(src.path(item.rel)) != row["input_sha256"]:
        return False
    write_part(state, "media", item.media_id, [{**row, "input_fingerprint": item.fingerprint}])
    return True


def discover(config: AnonymizeConfig) -> tuple[list[MediaItem], list[tuple[str, str]]]:
    """(media items in path order, [(path, reason)] for files that are not media)."""
    (src, dest), state = locations(config), state_of(config)
    if not src.fs.exists(src.root):
        raise FileNotFoundError(f"{src.url}: source does not exist")
    if src.is_local and not src.fs.isdir(src.root):
        raise NotADirectoryError(f"{src.url}: source must be a folder")
    inside = [p for p in (_prefix_inside_src(src, dest), _prefix_inside_src(src, state)) if p]
    items, skipped, links = [], [], []
    for rel in src.list_files(links=links):
        if rel.split("/")[0] == META_DIR or any(rel == p or rel.startswith(p.rstrip("/") + "/") for p in inside):
            continue
        kind = media_kind(rel)
        if kind is None:
            skipped.append((rel, f"not a supported media type ({posixpath.splitext(rel)[1] or 'no extension'})"))
            continue
        try:
            items.append(MediaItem(rel, kind, src.fingerprint(rel)))
        except (PathError, OSError) as e:  # bad input: recorded as failed, the archive goes on
            items.append(MediaItem(rel, kind, "", error=f"cannot be read: {e}"))
    skipped += [(rel, "symbolic link, not followed (it could lead outside the source)") for rel in links]
    skipped.sort()
    work = work_hash(config)
    for item in items:
        item.done = item.error is None and is_done(src, dest, state, item, work)
        if not item.done and item.error is None:  # faces a reviewer added: masked always (faceveil review)
            item.manual = manual_tracks.forced(state, item.media_id)
    return items, skipped
