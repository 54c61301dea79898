"""Envelope encryption: data keys wrapped by the master key, payloads sealed with AES-256-GCM and
bound to their place (media, frame, track, box) through the associated data."""
from __future__ import annotations

import json
import secrets

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from faceveil.storage.keys import MasterKey

NONCE_BYTES = 12


class SealError(ValueError):
    """A sealed payload that does not open: wrong key, modified bytes, or moved to another place."""


def associated_data(**place) -> bytes:
    """Canonical bytes of where a payload belongs (sorted JSON)."""
    return json.dumps(place, sort_keys=True, separators=(",", ":")).encode()


def seal(key: bytes, plaintext: bytes, aad: bytes) -> bytes:
    """nonce || AES-256-GCM(plaintext, aad)."""
    nonce = secrets.token_bytes(NONCE_BYTES)
    return nonce + AESGCM(key).encrypt(nonce, plaintext, aad)


def open_sealed(key: bytes, sealed: bytes, aad: bytes, what: str) -> bytes:
    """The plaintext, or SealError naming `what` (never the key)."""
    try:
        return AESGCM(key).decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], aad)
    except (InvalidTag, ValueError):
        raise SealError(f"{what}: authentication failed (wrong key, modified or moved)") from None


def new_data_key() -> bytes:
    return AESGCM.generate_key(bit_length=256)


def wrap_data_key(master: MasterKey, data_key: bytes, key_id: str) -> bytes:
    """The data key sealed under the master's key-wrapping sub-key, bound to its id."""
    return seal(master.derive("vault/kek"), data_key, associated_data(key_id=key_id))


def unwrap_data_key(master: MasterKey, wrapped: bytes, key_id: str) -> bytes:
    return open_sealed(master.derive("vault/kek"), wrapped, associated_data(key_id=key_id), f"data key {key_id}")
