"""Where a media's work happens: the archive's locations (the source, DEST, the public tree, and the
private state root), the worker's scratch space, the input size check, the output's path, and
cleaning up what a task leaves behind."""

from __future__ import annotations

import os
import posixpath
import tempfile

from faceveil.config import AnonymizeConfig
from faceveil.pipeline.jobs import MediaItem
from faceveil.storage.media import MediaError
from faceveil.storage.paths import Location
from faceveil.storage.state import public_location, state_location


def locations(config: AnonymizeConfig) -> tuple[Location, Location]:
    """(the source, DEST): DEST takes anonymized media only; its commits stage in the state root."""
    return Location(config.src, config.storage_options), public_location(
        config.dest, state_of(config), config.storage_options
    )


def state_of(config) -> Location:
    """The run's private state root: manifests, vault, index, quarantine, segments, reports, MLflow."""
    return state_location(config.state, config.storage_options)


_PRIVATE: list[str] = []  # this process's own scratch folder, made on first use


def scratch(config) -> str:
    """A local folder only this user can read (0700) for a task's temporary files: the run's own
    (`config.cluster.scratch_dir`, a `run_scratch` folder) or, without one, this process's own."""
    if config.cluster.scratch_dir:
        os.makedirs(config.cluster.scratch_dir, mode=0o700, exist_ok=True)
        return config.cluster.scratch_dir
    if not _PRIVATE or not os.path.isdir(_PRIVATE[0]):
        import atexit
        import shutil

        _PRIVATE[:] = [tempfile.mkdtemp(prefix="faceveil-")]
        atexit.register(shutil.rmtree, _PRIVATE[0], True)
    return _PRIVATE[0]


def run_scratch(config, run_id: str) -> str:
    """A new folder for one run's temporary files (mkdtemp: mode 0700, a fresh name), inside
    `config.cluster.scratch_dir` when the user chose where scratch space goes."""
    if config.cluster.scratch_dir:
        os.makedirs(config.cluster.scratch_dir, mode=0o700, exist_ok=True)
    return tempfile.mkdtemp(prefix=f"faceveil-{run_id}-", dir=config.cluster.scratch_dir or None)


def clean_up(tmp: str, vault) -> None:
    """Removes what a media task leaves behind, whatever happened: temp output, an uncommitted vault
    file (downloaded inputs go with their `Location.local_file` block)."""
    if vault is not None:
        vault.discard()
    if os.path.exists(tmp):
        os.unlink(tmp)


def check_size(config: AnonymizeConfig, item: MediaItem) -> None:
    size = int(item.fingerprint.split(":")[0] or 0)
    if size == 0:
        raise MediaError(item.rel, "empty file")
    if size > config.encoding.max_bytes:
        raise MediaError(item.rel, f"file too large ({size} bytes > limit {config.encoding.max_bytes})")


def out_rel(config: AnonymizeConfig, rel: str) -> str:
    """Where the output goes: lossless video is FFV1, which only MKV holds (clip.mp4 -> clip.mp4.mkv)."""
    return rel + ".mkv" if config.encoding.lossless and posixpath.splitext(rel)[1].lower() != ".mkv" else rel
