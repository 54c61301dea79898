"""Envelope encryption: data keys wrapped for the master key (X25519 sealed box, so writers need
only its public key), payloads sealed with AES-256-GCM and
bound to their place (media, frame, track, box) through the associated data. The vault's X25519 key
pair comes from keys (vault_public_key stays importable from here)."""

from __future__ import annotations

import json
import secrets

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from faceveil.storage.keys import MasterKey, _private, vault_public_key  # noqa: F401  (re-exported)

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


def _kek(shared: bytes, ephemeral: bytes, public: bytes) -> bytes:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    return HKDF(hashes.SHA256(), 32, salt=None, info=b"faceveil vault wrap" + ephemeral + public).derive(shared)


def _key_place(key_id: str, archive: str | None) -> bytes:
    """A wrapped data key's associated data: its id, and its archive's id (archives made before
    archive ids have none)."""
    return associated_data(key_id=key_id) if archive is None else associated_data(key_id=key_id, archive=archive)


def wrap_data_key(public: bytes, data_key: bytes, key_id: str, archive: str | None = None) -> bytes:
    """ephemeral X25519 public || AES-256-GCM(data key) under ECDH(ephemeral, vault public), bound to
    key_id and the archive."""
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

    eph = X25519PrivateKey.generate()
    eph_pub = eph.public_key().public_bytes_raw()
    kek = _kek(eph.exchange(X25519PublicKey.from_public_bytes(public)), eph_pub, public)
    return eph_pub + seal(kek, data_key, _key_place(key_id, archive))


def unwrap_data_key(master: MasterKey, wrapped: bytes, key_id: str, archive: str | None = None) -> bytes:
    """The data key, or SealError (wrong master key, modified, another key's id or archive)."""
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey

    if len(wrapped) < 32 + NONCE_BYTES + 16:
        raise SealError(f"data key {key_id}: malformed")
    priv = _private(master)
    public = priv.public_key().public_bytes_raw()
    kek = _kek(priv.exchange(X25519PublicKey.from_public_bytes(wrapped[:32])), wrapped[:32], public)
    return open_sealed(kek, wrapped[32:], _key_place(key_id, archive), f"data key {key_id}")
