import os
import pickle

import pytest

from faceveil.storage.keys import BadKeyError, MasterKey, decode_key, encode_key, load_key, write_key_file
from faceveil.storage.sealing import (SealError, associated_data, new_data_key, open_sealed, seal, unwrap_data_key,
                                      vault_public_key, wrap_data_key)


def test_key_file_is_0600_and_round_trips(tmp_path):
    k = MasterKey.generate()
    write_key_file(tmp_path / "k", k)
    assert (tmp_path / "k").stat().st_mode & 0o777 == 0o600
    assert load_key(tmp_path / "k").fingerprint == k.fingerprint
    with pytest.raises(BadKeyError, match="already exists"):
        write_key_file(tmp_path / "k", MasterKey.generate())


def test_key_file_readable_by_others_refused(tmp_path):
    write_key_file(tmp_path / "k", MasterKey.generate())
    os.chmod(tmp_path / "k", 0o644)
    with pytest.raises(BadKeyError, match="chmod 600"):
        load_key(tmp_path / "k")


def test_key_from_environment(monkeypatch):
    k = MasterKey.generate()
    monkeypatch.setenv("FACEVEIL_KEY", encode_key(k))
    assert load_key().matches(k.fingerprint)
    monkeypatch.setenv("FACEVEIL_KEY", "nonsense")
    with pytest.raises(BadKeyError, match="not a faceveil key"):
        load_key()


def test_passphrase_derivation_is_deterministic_per_salt():
    salt = b"s" * 16
    a = MasterKey.from_passphrase("correct horse", salt, n=2**10)
    assert a.fingerprint == MasterKey.from_passphrase("correct horse", salt, n=2**10).fingerprint
    assert a.fingerprint != MasterKey.from_passphrase("correct horse", b"t" * 16, n=2**10).fingerprint
    assert a.fingerprint != MasterKey.from_passphrase("wrong horse", salt, n=2**10).fingerprint


def test_key_material_never_shown():
    k = MasterKey.generate()
    text = encode_key(k).split(":", 1)[1]
    assert text not in repr(k) and text not in str(k) and k.fingerprint in repr(k)
    with pytest.raises(TypeError):
        pickle.dumps(k)
    with pytest.raises(BadKeyError) as e:
        decode_key("faceveil-key-v1:" + text[:-4], "somewhere")
    assert text[:-4] not in str(e.value)


def test_subkeys_differ_by_purpose_and_context():
    k = MasterKey.generate()
    assert k.derive("vault/kek") != k.derive("index/rotation")
    assert k.derive("scramble", b"m1") != k.derive("scramble", b"m2")
    assert len(k.derive("x")) == 32


def test_seal_binds_payload_to_its_place():
    key = new_data_key()
    aad = associated_data(media="m1", frame=7, track=3, box=[1, 2, 30, 40])
    sealed = seal(key, b"png bytes", aad)
    assert open_sealed(key, sealed, aad, "m1/7/3") == b"png bytes"
    moved = associated_data(media="m1", frame=8, track=3, box=[1, 2, 30, 40])
    with pytest.raises(SealError, match="m1/8/3"):
        open_sealed(key, sealed, moved, "m1/8/3")
    tampered = sealed[:-1] + bytes([sealed[-1] ^ 1])
    with pytest.raises(SealError):
        open_sealed(key, tampered, aad, "x")
    with pytest.raises(SealError):
        open_sealed(new_data_key(), sealed, aad, "x")


def test_data_keys_wrapped_under_master():
    master, dk = MasterKey.generate(), new_data_key()
    wrapped = wrap_data_key(vault_public_key(master), dk, "track-3")
    assert unwrap_data_key(master, wrapped, "track-3") == dk
    with pytest.raises(SealError, match="data key track-3"):
        unwrap_data_key(MasterKey.generate(), wrapped, "track-3")
    with pytest.raises(SealError):
        unwrap_data_key(master, wrapped, "track-4")  # a wrapped key cannot be reassigned
    assert wrap_data_key(vault_public_key(master), dk, "track-3") != wrapped  # fresh ephemeral key each time
    assert dk not in wrapped
