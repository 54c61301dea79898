"""The vault's control files (storage/vault_control.py, storage/control.py): keyinfo signed by the key
holder, each key part sealed by its digest, tampering of either refused before use; a vault made
before control files were signed is signed on first use, once; a keyinfo missing beside vault parts
never starts a new vault; rotate-key, interrupted half-way, finishes on a second call."""

import dataclasses
import json

import numpy as np
import pytest

from faceveil.storage import manifests
from faceveil.storage.control import ControlFileError, control_key
from faceveil.storage.keys import BadKeyError, MasterKey, VaultLock
from faceveil.storage.paths import Location
from faceveil.storage.sealing import wrap_data_key
from faceveil.storage.vault import (
    KEYINFO,
    VaultWriter,
    archive_id,
    check_key,
    check_master,
    entry_frames,
    open_region,
    rotate_key,
    seal_part,
    seal_path,
    track_keys,
)


def _archive(tmp_path, key: MasterKey, media=("m1", "m2"), sign: bool = True) -> Location:
    """A state root with a vault: keyinfo, and per media two tracks' sealed regions and key parts."""
    state = Location(str(tmp_path / "state"))
    control = control_key(key) if sign else None
    info = check_key(state, key.fingerprint, create=VaultLock.of(key), control=control)
    lock = dataclasses.replace(VaultLock.of(key), archive_id=info["archive_id"])
    rng = np.random.default_rng(0)
    for mid in media:
        w = VaultWriter(lock, mid, str(tmp_path))
        for frame in range(3):
            for track in (0, 1):
                w.seal(frame, track, (10 * track, 0, 10 * track + 8, 8), rng.integers(0, 255, (8, 8, 3), np.uint8))
        w.commit(state)
        if sign:
            seal_part(state, control, key.fingerprint, mid, w.keys_sha256)
    return state


def _regions(state, key, mid, tmp_path):
    keys, _ = track_keys(state, key, mid)
    return [
        open_region(e, keys[e["track_id"]], archive_id(state))
        for _, es in entry_frames(state, mid, str(tmp_path))
        for e in es
    ]


def test_signed_vault_opens_and_tampering_is_refused(tmp_path):
    key = MasterKey.generate()
    state = _archive(tmp_path, key)
    assert check_master(state, key)["version"] == 3 and "mac" in json.loads(state.read_bytes(KEYINFO))
    assert len(_regions(state, key, "m1", tmp_path)) == 6
    # a key part forged with the public lock alone (what a worker or a reader of keyinfo holds)
    rows = manifests.read_part(state, "vault/keys", "m1").to_pylist()
    lock = VaultLock.of(key)
    rows[0]["wrapped"] = wrap_data_key(
        bytes.fromhex(lock.public_hex),
        b"\x00" * 32,
        rows[0]["key_id"],
        json.loads(state.read_bytes(KEYINFO))["archive_id"],
    )
    manifests.write_part(state, "vault/keys", "m1", rows)
    with pytest.raises(ControlFileError, match="not the key part its seal names"):
        track_keys(state, key, "m1")
    state.remove(seal_path("m2"))  # a part without its seal
    with pytest.raises(ControlFileError, match="no seal"):
        track_keys(state, key, "m2")
    info = json.loads(state.read_bytes(KEYINFO))  # keyinfo edited (another public key planted)
    state.write_bytes(KEYINFO, json.dumps({**info, "public_key": "00" * 32}).encode())
    with pytest.raises(ControlFileError, match="MAC mismatch"):
        check_master(state, key)
    state.write_bytes(KEYINFO, json.dumps({k: v for k, v in info.items() if k != "mac"}).encode())
    with pytest.raises(ControlFileError, match="no MAC"):  # its MAC removed: not taken for an old vault
        check_master(state, key)
    with pytest.raises(BadKeyError, match="wrong key"):
        check_master(state, MasterKey.generate())


def test_missing_keyinfo_beside_vault_parts_never_starts_a_new_vault(tmp_path):
    key = MasterKey.generate()
    state = _archive(tmp_path, key)
    state.remove(KEYINFO)
    other = MasterKey.generate()
    with pytest.raises(ControlFileError, match="missing beside existing vault parts"):
        check_key(state, other.fingerprint, create=VaultLock.of(other), control=control_key(other))
    assert not state.exists(KEYINFO)


def test_an_old_vault_is_signed_once_by_its_first_key_holder(tmp_path):
    key = MasterKey.generate()
    state = _archive(tmp_path, key, sign=False)  # written before control files were signed
    assert "mac" not in json.loads(state.read_bytes(KEYINFO)) and not state.exists(seal_path("m1"))
    with pytest.raises(ControlFileError, match="no seal"):
        track_keys(state, key, "m1")
    check_master(state, key)  # signs keyinfo, seals the parts as they are
    assert "mac" in json.loads(state.read_bytes(KEYINFO)) and state.exists(seal_path("m1"))
    assert len(_regions(state, key, "m2", tmp_path)) == 6


def test_interrupted_rotation_finishes_on_a_second_call(tmp_path, monkeypatch):
    old, new = MasterKey.generate(), MasterKey.generate()
    state = _archive(tmp_path, old, media=("m1", "m2", "m3"))
    real, calls = manifests.write_part, []

    def crash_on_the_second_part(loc, table, key, rows):
        calls.append(key)
        if table == "vault/keys" and len(calls) == 2:
            raise KeyboardInterrupt("power cut")
        return real(loc, table, key, rows)

    monkeypatch.setattr(manifests, "write_part", crash_on_the_second_part)
    with pytest.raises(KeyboardInterrupt):
        rotate_key(state, old, new)
    monkeypatch.setattr(manifests, "write_part", real)
    info = json.loads(state.read_bytes(KEYINFO))
    assert info["master_fingerprint"] == old.fingerprint and info["rotating_to"]["fingerprint"] == new.fingerprint
    with pytest.raises(BadKeyError, match="interrupted"):  # a run must not seal for either key meanwhile
        check_key(state, old.fingerprint)
    assert rotate_key(state, old, new) == 4  # the two parts left (two tracks each); the moved one is left as it is
    assert rotate_key(state, old, new) == 0  # done
    for mid in ("m1", "m2", "m3"):
        assert len(_regions(state, new, mid, tmp_path)) == 6
    with pytest.raises(BadKeyError, match="wrong key"):
        check_master(state, old)
