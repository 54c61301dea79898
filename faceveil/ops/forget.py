"""Forget: crypto-shredding of chosen tracks (their data keys deleted from the vault)."""
from __future__ import annotations

from faceveil.storage.keys import MasterKey
from faceveil.storage.paths import Location
from faceveil.storage.vault import check_key, forget_tracks
from faceveil.tasks.restore_media import ok_media, resolve_tracks


def forget(archive: Location, master: MasterKey, refs: list[str]) -> dict:
    """Crypto-shredding of the referenced tracks of the archive whose state root is `archive`;
    returns media path -> tracks shredded."""
    check_key(archive, master.fingerprint)
    media = ok_media(archive)
    done = {}
    for mid, tracks in resolve_tracks(archive, refs).items():
        done[media[mid]["rel_path"]] = forget_tracks(archive, master, mid, tracks)
    return done
