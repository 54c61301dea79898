"""Where a media's work happens: the archive's locations, the worker's scratch space, the input
size check, the output's path, and cleaning up what a task leaves behind."""
from __future__ import annotations

import os
import posixpath
import tempfile

from faceveil.config import AnonymizeConfig
from faceveil.pipeline.jobs import MediaItem
from faceveil.storage.media import MediaError
from faceveil.storage.paths import Location


def locations(config: AnonymizeConfig) -> tuple[Location, Location]:
    return Location(config.src, config.storage_options), Location(config.dest, config.storage_options)


def scratch(config: AnonymizeConfig) -> str:
    path = config.scratch_dir or os.path.join(tempfile.gettempdir(), "faceveil-scratch")
    os.makedirs(path, exist_ok=True)
    return path


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
    if size > config.max_bytes:
        raise MediaError(item.rel, f"file too large ({size} bytes > limit {config.max_bytes})")


def out_rel(config: AnonymizeConfig, rel: str) -> str:
    """Where the output goes: lossless video is FFV1, which only MKV holds (clip.mp4 -> clip.mp4.mkv)."""
    return rel + ".mkv" if config.lossless and posixpath.splitext(rel)[1].lower() != ".mkv" else rel
