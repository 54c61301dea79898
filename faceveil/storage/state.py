"""An archive's two roots. DEST is the public tree: only anonymized media (and a published dataset's
table and datasheet), safe to sync to a share or a bucket as it is. The state root is private: the
manifests, vault, identity index, access log, quarantine, staging, segments, summaries, reports and
MLflow store. It is `<DEST>.faceveil-private` beside DEST by default (`--state`, config key `state`:
anywhere else, s3:// too), never inside DEST, nor DEST inside it.

Archives made before kept that state inside DEST, as `DEST/_faceveil/`: the keyed commands read it
there in place; the next run (or `faceveil migrate-state`) moves it to the state root."""

from __future__ import annotations

import os
import posixpath
import shutil
from pathlib import Path

from faceveil.storage.paths import META_DIR, Location

SUFFIX = ".faceveil-private"
STAGING = "staging"  # the state root's folder for commits' temporary files


class StateError(ValueError):
    """A state root that cannot be used where it is (overlaps DEST or the source, ambiguous)."""


def _is_s3(url: str) -> bool:
    return url.startswith(("s3://", "s3a://"))


def _key(url: str) -> tuple[str, str]:
    """(filesystem, normalised absolute path) of a root URL, to compare roots."""
    if _is_s3(url):
        return "s3", url.split("://", 1)[1].strip("/")
    return "file", str(Path(url).expanduser().resolve())


def default_state_url(dest_url: str) -> str:
    """`<DEST>.faceveil-private`, DEST's sibling (on S3, a sibling prefix in the same bucket)."""
    fs, path = _key(dest_url)
    if fs == "s3":
        bucket, _, prefix = path.partition("/")
        if not prefix:
            raise StateError(
                f"{dest_url}: a bucket's root has no sibling to keep the private state in: "
                "give --state s3://BUCKET/PREFIX (or a local folder)"
            )
        return f"s3://{bucket}/{prefix}{SUFFIX}"
    if Path(path).parent == Path(path):
        raise StateError(f"{dest_url}: a filesystem root has no sibling to keep the private state in: give --state DIR")
    return path + SUFFIX


def legacy_url(dest_url: str) -> str:
    """Where archives made before the state root kept it: DEST/_faceveil."""
    return dest_url.rstrip("/") + "/" + META_DIR


def _inside(a: tuple[str, str], b: tuple[str, str]) -> bool:
    return a[0] == b[0] and (a[1] == b[1] or a[1].startswith(b[1].rstrip("/") + "/"))


def check_apart(dest_url: str, state_url: str, src_url: str | None = None) -> None:
    """StateError unless the state root and DEST are apart (everything inside DEST may be published)
    and the source is not inside the state root (a state root inside the source is left out of its
    media, as DEST is)."""
    d, s = _key(dest_url), _key(state_url)
    if _inside(s, d) or _inside(d, s):
        raise StateError(
            f"the private state root {state_url} and the public tree {dest_url} overlap: everything "
            "in DEST may be published, so the state (vault, index, logs, quarantine) must live apart "
            "(--state DIR outside DEST)"
        )
    if src_url is not None:
        if _inside(_key(src_url), s):
            raise StateError(
                f"the private state root {state_url} and the source {src_url} overlap: "
                "keep the state outside the source (--state DIR)"
            )


def check_restore_out(out_url: str, dest_url: str, state_url: str) -> None:
    """StateError unless OUT, where restored originals go, lies apart from DEST (published: an
    original there is a leak, and would overwrite the anonymized file) and from the state root."""
    o = _key(out_url)
    for name, url in (("the archive's public tree", dest_url), ("the archive's private state root", state_url)):
        k = _key(url)
        if _inside(o, k) or _inside(k, o):
            raise StateError(
                f"restore: {out_url} overlaps {name} {url}: restored originals must go to a folder "
                "apart from both; nothing was written"
            )


def check_allowed_out(out_url: str, roots) -> None:
    """StateError unless OUT lies inside one of the allow-listed `roots` (the archive config's
    [restore] roots: a caller of the restore deployment chooses OUT, so the config bounds it)."""
    o = _key(out_url)
    if not any(_inside(o, _key(r)) for r in roots or ()):
        raise StateError(
            f"restore: {out_url} is not inside an allowed restore root ({', '.join(roots or ()) or 'none set'}: "
            "the archive config's [restore] roots); nothing was written"
        )


def state_location(url: str, storage_options: dict | None = None) -> Location:
    """The state root as a Location; locally its commits stage in its own `staging/` folder."""
    loc = Location(url, storage_options or {})
    if loc.is_local:
        loc.staging = os.path.join(loc.root, STAGING)
    return loc


def public_location(dest_url: str, state: Location, storage_options: dict | None = None) -> Location:
    """DEST as a Location whose commits stage in the state root (same filesystem: an atomic rename;
    else a hidden name beside the target, see Location.commit_file)."""
    loc = Location(dest_url, storage_options or {})
    if loc.is_local and state.is_local:
        loc.staging = state.staging
    return loc


def _has_files(loc: Location) -> bool:
    if loc.is_local:
        return os.path.isdir(loc.root) and any(os.scandir(loc.root))
    return loc.fs.exists(loc.root) and bool(loc.fs.ls(loc.root, detail=False))


def find_state(dest_url: str, state_url: str | None = None, storage_options: dict | None = None) -> Location:
    """The state root a command that reads an archive uses: `state_url` when given; else the default
    one when it holds anything; else an old archive's DEST/_faceveil when there is one (read in
    place); else the default one."""
    if state_url:
        check_apart(dest_url, state_url)
        return state_location(state_url, storage_options)
    default = state_location(default_state_url(dest_url), storage_options)
    if _has_files(default):
        return default
    legacy = state_location(legacy_url(dest_url), storage_options)
    return legacy if _has_files(legacy) else default


def migrate(dest_url: str, state_url: str, storage_options: dict | None = None) -> str | None:
    """Moves an old archive's DEST/_faceveil to the state root `state_url` (which must hold nothing
    yet); a message saying so, or None when there was nothing to move."""
    check_apart(dest_url, state_url)
    legacy = state_location(legacy_url(dest_url), storage_options)
    if not _has_files(legacy):
        return None
    target = state_location(state_url, storage_options)
    if _has_files(target):
        raise StateError(
            f"{legacy.url} (an old archive's private state, inside DEST) and {state_url} (its state "
            "root) both hold files: merge or remove one by hand, then run again"
        )
    if legacy.is_local and target.is_local:
        os.makedirs(os.path.dirname(target.root), exist_ok=True)
        if os.path.isdir(target.root):
            os.rmdir(target.root)  # empty (checked above)
        shutil.move(legacy.root, target.root)
        _repoint_mlflow(target.root, legacy.root)
    elif not legacy.is_local and not target.is_local:  # S3 has no rename: copied, then the old copy goes
        legacy.fs.copy(legacy.root + "/", target.root + "/", recursive=True)
        legacy.fs.rm(legacy.root, recursive=True)
    else:  # between a local folder and S3: file by file
        for rel in legacy.list_files():
            target.write_bytes(rel, legacy.read_bytes(rel))
        legacy.fs.rm(legacy.root, recursive=True)
    return f"moved the private state out of the public tree: {legacy.url} -> {target.url}"


def _repoint_mlflow(root: str, old_root: str) -> None:
    """The moved MLflow store's artifact locations point into the new state root (sqlite store only)."""
    db = os.path.join(root, "mlflow", "mlflow.db")
    if not os.path.isfile(db):
        return
    import sqlite3

    old, new = Path(old_root).as_uri(), Path(root).as_uri()
    with sqlite3.connect(db) as con:
        for table, column in (("experiments", "artifact_location"), ("runs", "artifact_uri")):
            try:
                con.execute(
                    f"UPDATE {table} SET {column} = REPLACE({column}, ?, ?) WHERE {column} LIKE ?",
                    (old, new, old + "%"),
                )
            except sqlite3.OperationalError:  # not an MLflow store after all
                return


def relative_to_state(rel: str) -> str:
    """A state root's relative path as old outputs named it inside DEST (`_faceveil/...`) made plain."""
    prefix = META_DIR + "/"
    return rel[len(prefix) :] if rel.startswith(prefix) else posixpath.normpath(rel)
