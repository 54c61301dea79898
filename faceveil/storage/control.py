"""Control files authenticated with the master key: the vault's keyinfo.json, the seal of each vault
key part (vault/seals/<media>.json: the SHA-256 of the part as its run wrote it) and the identity
index's meta.json (its match threshold). Each carries an HMAC-SHA256 under a key derived from the
master key for this purpose alone, checked (in constant time) before the file is used. Whoever holds
only the vault's public lock (a worker) or write access to the state root cannot change them
unnoticed: a planted threshold, a forged key part or a replaced keyinfo is refused. A key holder can
sign (that is what the access log is for)."""

from __future__ import annotations

import hashlib
import hmac
import json

from faceveil.storage.keys import BadKeyError, MasterKey


class ControlFileError(BadKeyError):
    """A control file that is not authenticated, or whose MAC does not match: refused. Names the
    file, never a key."""


def control_key(master: MasterKey) -> bytes:
    """The MAC key of an archive's control files under `master`."""
    return master.derive("control-files")


def _canonical(doc: dict) -> bytes:
    return json.dumps(
        {k: v for k, v in doc.items() if k != "mac"},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        default=str,
    ).encode()


def _mac(key: bytes, label: str, doc: dict) -> str:
    return hmac.new(key, label.encode() + b"\x00" + _canonical(doc), hashlib.sha256).hexdigest()


def signed(doc: dict, key: bytes, label: str) -> dict:
    """`doc` with its MAC (field "mac") for the control file `label` (e.g. "keyinfo")."""
    return {**{k: v for k, v in doc.items() if k != "mac"}, "mac": _mac(key, label, doc)}


def verified(doc: dict, key: bytes, label: str, where: str) -> dict:
    """`doc` when its MAC is the one `key` makes for `label`; ControlFileError naming `where` otherwise."""
    mac = doc.get("mac")
    if not isinstance(mac, str):
        raise ControlFileError(
            f"{where}: not authenticated (no MAC): refused; it was written without the key, or its MAC was removed"
        )
    if not hmac.compare_digest(mac.encode(), _mac(key, label, doc).encode()):
        raise ControlFileError(f"{where}: MAC mismatch (edited, or signed by another key): refused")
    return doc
