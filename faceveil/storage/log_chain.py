"""The access log's MAC keys across key rotations. Each master key keeps the log for a span of rows
(an epoch) with a MAC key derived from it. The rotation row that starts the next epoch carries the
previous epoch's MAC key sealed (AES-256-GCM, bound to both fingerprints) under a key derived from
the next epoch's MAC key. So the newest master key opens every earlier epoch's MAC key in turn,
while a retired master key can MAC no row after its epoch. No key is ever stored in clear."""

from __future__ import annotations

from faceveil.storage.keys import MasterKey
from faceveil.storage.sealing import SealError, associated_data, open_sealed, seal

ROTATION = "rotation"  # the details field of a rotation row


def mac_key(master: MasterKey) -> bytes:
    """The MAC key of the epoch kept with `master`."""
    return master.derive("access-log")


def _wrapping_key(epoch_key: bytes) -> bytes:
    return MasterKey(epoch_key).derive("access-log/previous-epoch")


def _aad(old_fp: str, new_fp: str) -> bytes:
    return associated_data(purpose="access-log previous epoch", old=old_fp, new=new_fp)


def seal_previous(new_epoch_key: bytes, old_epoch_key: bytes, old_fp: str, new_fp: str) -> str:
    """The old epoch's MAC key sealed for the new epoch, hex."""
    return seal(_wrapping_key(new_epoch_key), old_epoch_key, _aad(old_fp, new_fp)).hex()


def open_previous(epoch_key: bytes, sealed_hex: str, old_fp: str, new_fp: str) -> bytes | None:
    """The previous epoch's MAC key, or None when the sealed value was edited or is for another key."""
    try:
        key = open_sealed(
            _wrapping_key(epoch_key),
            bytes.fromhex(sealed_hex),
            _aad(str(old_fp), str(new_fp)),
            "previous access-log key",
        )
    except (SealError, ValueError, TypeError):
        return None
    return key if len(key) == 32 else None
