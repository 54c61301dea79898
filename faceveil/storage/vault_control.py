"""The vault's control files (storage/control.py): keyinfo.json (master fingerprint, public key,
passphrase KDF parameters and salt, a random archive id; MACed by the key holder) and the seal of
each media's key part (its SHA-256 as its run, forget or rotate-key wrote it, MACed): checked before
a key part is opened, so neither a part forged with the public lock nor a replaced keyinfo is used."""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import secrets
from datetime import datetime, timezone

import pyarrow as pa
import pyarrow.parquet as pq

from faceveil.storage import manifests
from faceveil.storage.control import ControlFileError, signed, verified
from faceveil.storage.keys import BadKeyError, PassphraseKDF, VaultLock
from faceveil.storage.paths import Location

KEYINFO = "vault/keyinfo.json"
SEALS = "vault/seals"


def read_keyinfo(dest: Location) -> dict | None:
    """keyinfo.json as stored (unchecked: its KDF parameters are needed before there is a key)."""
    if not dest.exists(KEYINFO):
        return None
    return json.loads(dest.read_bytes(KEYINFO))


def archive_id(dest: Location) -> str | None:
    """The vault's archive id (None for vaults made before archive ids, or no vault)."""
    return (read_keyinfo(dest) or {}).get("archive_id")


def passphrase_kdf(dest: Location) -> PassphraseKDF:
    """How a passphrase becomes this archive's key: its stored parameters and salt (scrypt with its
    salt for vaults made before they were stored), or new ones when the archive has no vault yet.
    Parameters below the minimum (a planted keyinfo) are refused (PassphraseKDF)."""
    info = read_keyinfo(dest)
    if info and info.get("kdf"):
        return PassphraseKDF.from_dict(info["kdf"])
    if info and info.get("scrypt_salt"):
        return PassphraseKDF("scrypt", info["scrypt_salt"])
    return PassphraseKDF.new()


def _has_vault_parts(dest: Location) -> bool:
    return any(dest.list_files(under=f"vault/{part}") for part in ("keys", "entries", "seals"))


def _same_key(info: dict, fingerprint: str, dest: Location) -> None:
    if not hmac.compare_digest(str(info.get("master_fingerprint", "")).encode(), fingerprint.encode()):
        raise BadKeyError(
            f"wrong key for the vault of {dest.url} (this key is {fingerprint}, "
            f"the vault's is {info.get('master_fingerprint')}); nothing was written"
        )


def check_key(
    dest: Location, fingerprint: str, *, create: VaultLock | None = None, control: bytes | None = None
) -> dict:
    """Refuses a key that is not the vault's (constant-time fingerprint comparison) before anything
    is written. With `control` (the key holder's control-file key, storage/control.py) keyinfo's MAC
    must hold too; a vault from before keyinfo was signed (and no part of it sealed) is signed now,
    its key parts sealed as they are (trust on first use: say so). With `create`, an archive
    without a vault gets its keyinfo from that lock (signed when `control` is given); one whose
    keyinfo is missing beside existing vault parts is refused, never made a new vault."""
    info = read_keyinfo(dest)
    if info is None:
        if create is None:
            raise BadKeyError(f"{dest.display(KEYINFO)}: no vault here (was the archive anonymized with --reversible?)")
        if _has_vault_parts(dest):
            raise ControlFileError(
                f"{dest.display(KEYINFO)} is missing beside existing vault parts: refusing to "
                "start a new vault over them (restore keyinfo.json from a backup)"
            )
        info = {
            "version": 3,
            "archive_id": secrets.token_hex(16),
            "master_fingerprint": create.fingerprint,
            "public_key": create.public_hex,
            "kdf": create.kdf.as_dict() if create.kdf else None,
            "created_at": datetime.now(timezone.utc).isoformat(),
        }
        write_keyinfo(dest, info, control)
        return info
    if info.get("rotating_to"):  # parts under either key: nothing but rotate-key may use the vault now
        raise BadKeyError(
            f"{dest.url}: a key rotation was interrupted; finish it first (faceveil rotate-key with both keys again)"
        )
    _same_key(info, fingerprint, dest)
    if control is not None:
        if "mac" in info or dest.list_files(under=SEALS):  # signed once: it stays signed
            verified(info, control, "keyinfo", dest.display(KEYINFO))
        else:
            _sign_legacy(dest, control, info)
    return info


def check_master(dest: Location, master) -> dict:
    """`check_key` for a key holder: the master key is the vault's and keyinfo's MAC holds (a vault
    from before signed control files is signed now)."""
    from faceveil.storage.control import control_key

    return check_key(dest, master.fingerprint, control=control_key(master))


def write_keyinfo(dest: Location, info: dict, control: bytes | None) -> None:
    dest.write_bytes(KEYINFO, json.dumps(signed(info, control, "keyinfo") if control else info, indent=2).encode())


def _sign_legacy(dest: Location, control: bytes, info: dict) -> None:
    """An archive from before control files were signed: its key parts sealed as they are, its index's
    meta.json and its keyinfo signed, by the key holder who opens it first."""
    from faceveil.storage.identity_index import META_FILE, META_LABEL

    for rel in dest.list_files(under="vault/keys"):
        if rel.endswith(".parquet"):
            mid = rel.rsplit("/", 1)[1][: -len(".parquet")]
            seal_part(dest, control, info["master_fingerprint"], mid, hashlib.sha256(dest.read_bytes(rel)).hexdigest())
    if dest.exists(META_FILE):  # the index's meta.json (its threshold) too
        meta = json.loads(dest.read_bytes(META_FILE))
        dest.write_bytes(META_FILE, json.dumps(signed(meta, control, META_LABEL), indent=2, sort_keys=True).encode())
    write_keyinfo(dest, {**info, "signed_at": datetime.now(timezone.utc).isoformat()}, control)


# ---------------------------------------------------------------- seals of the key parts


def seal_path(media_id: str) -> str:
    return f"{SEALS}/{media_id}.json"


def seal_part(dest: Location, control: bytes, fingerprint: str, media_id: str, keys_sha256: str) -> None:
    """Seals one media's key part: its SHA-256, as written by its run (or by forget, rotate-key), MACed
    with the control-file key of the master key `fingerprint` names."""
    doc = signed(
        {"media_id": media_id, "keys_sha256": keys_sha256, "key": fingerprint, "archive_id": archive_id(dest)},
        control,
        "vault-keys",
    )
    dest.write_bytes(seal_path(media_id), json.dumps(doc, indent=2).encode())


def key_part(dest: Location, controls: dict[str, bytes], media_id: str) -> pa.Table:
    """The media's key part once its seal (MACed by one of `controls`: fingerprint -> control key)
    says it is the part its run wrote: a part forged with the public lock, or swapped, is refused."""
    rel = manifests.part_path("vault/keys", media_id)
    if not dest.exists(rel):
        raise FileNotFoundError(f"{dest.display(rel)}: vault keys missing")
    data, where = dest.read_bytes(rel), dest.display(seal_path(media_id))
    if not dest.exists(seal_path(media_id)):
        raise ControlFileError(f"{where}: the key part {dest.display(rel)} has no seal: refused")
    seal = json.loads(dest.read_bytes(seal_path(media_id)))
    control = controls.get(str(seal.get("key")))
    if control is None:
        raise ControlFileError(f"{where}: sealed by key {seal.get('key')}, not this one: refused")
    verified(seal, control, "vault-keys", where)
    if seal.get("archive_id") != archive_id(dest):
        raise ControlFileError(f"{where}: the seal of another archive's key part: refused")
    if seal.get("media_id") != media_id or not hmac.compare_digest(
        str(seal.get("keys_sha256")).encode(), hashlib.sha256(data).hexdigest().encode()
    ):
        raise ControlFileError(f"{dest.display(rel)}: not the key part its seal names (edited or swapped): refused")
    return pq.read_table(io.BytesIO(data), schema=manifests.VAULT_KEYS)
