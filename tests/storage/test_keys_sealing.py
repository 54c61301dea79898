import os
import pickle

import pytest

from faceveil.storage.keys import (
    PassphraseKDF,
    BadKeyError,
    MasterKey,
    VaultLock,
    decode_key,
    encode_key,
    load_key,
    write_key_file,
)
from faceveil.storage.sealing import (
    SealError,
    associated_data,
    new_data_key,
    open_sealed,
    seal,
    unwrap_data_key,
    vault_public_key,
    wrap_data_key,
)


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


@pytest.mark.parametrize("name", ["argon2id", "scrypt"])
def test_passphrase_derivation_is_deterministic_per_salt_and_parameters(name):
    small = {"argon2id": {"memory_kib": 65536, "iterations": 2}, "scrypt": {"n": 2**14}}[name]  # the minimums
    kdf = PassphraseKDF(name, "73" * 16, **small)
    a = MasterKey.from_passphrase("correct horse", kdf)
    assert (
        a.fingerprint == MasterKey.from_passphrase("correct horse", PassphraseKDF.from_dict(kdf.as_dict())).fingerprint
    )
    assert (
        a.fingerprint != MasterKey.from_passphrase("correct horse", PassphraseKDF(name, "74" * 16, **small)).fingerprint
    )
    assert a.fingerprint != MasterKey.from_passphrase("wrong horse", kdf).fingerprint
    other = {"argon2id": {"memory_kib": 65536, "iterations": 3}, "scrypt": {"n": 2**15}}[name]
    assert (
        a.fingerprint != MasterKey.from_passphrase("correct horse", PassphraseKDF(name, "73" * 16, **other)).fingerprint
    )


def test_new_archives_use_argon2id_at_a_cost_that_slows_guessing():
    kdf = PassphraseKDF.new()  # 256 MiB x 3 passes: about 0.65 s on the 2-core reference machine
    assert kdf.name == "argon2id" and kdf.memory_kib >= 2**18 and kdf.iterations >= 3
    assert len(bytes.fromhex(kdf.salt_hex)) >= 16 and PassphraseKDF.new().salt_hex != kdf.salt_hex
    with pytest.raises(BadKeyError):
        PassphraseKDF("md5", "73" * 16)


@pytest.mark.parametrize(
    "name,weak",
    [
        ("argon2id", {"memory_kib": 1024}),
        ("argon2id", {"iterations": 1}),
        ("scrypt", {"n": 2**10}),
        ("scrypt", {"r": 1}),
    ],
)
def test_weak_kdf_parameters_are_refused_even_from_a_keyinfo(tmp_path, name, weak):
    import json

    from faceveil.storage.paths import Location
    from faceveil.storage.vault import KEYINFO, passphrase_kdf

    with pytest.raises(BadKeyError, match="weak parameters"):
        PassphraseKDF(name, "73" * 16, **weak)
    planted = Location(str(tmp_path))  # a keyinfo planted to make each passphrase guess cheap
    planted.write_bytes(KEYINFO, json.dumps({"kdf": {**PassphraseKDF(name, "73" * 16).as_dict(), **weak}}).encode())
    with pytest.raises(BadKeyError, match="weak parameters"):
        passphrase_kdf(planted)


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


def test_an_archive_keeps_its_passphrase_kdf_and_older_vaults_keep_scrypt(tmp_path):
    import json

    from faceveil.storage.paths import Location
    from faceveil.storage.vault import KEYINFO, check_key, passphrase_kdf

    fresh = Location(str(tmp_path / "new"))
    kdf = passphrase_kdf(fresh)
    assert kdf.name == "argon2id"
    small = PassphraseKDF("argon2id", kdf.salt_hex, memory_kib=65536, iterations=2)
    key = MasterKey.from_passphrase("pw", small)
    check_key(fresh, key.fingerprint, create=VaultLock.of(key, small))
    assert passphrase_kdf(fresh) == small  # read back from keyinfo: the same key again
    old = Location(str(tmp_path / "old"))
    old.write_bytes(
        KEYINFO, json.dumps({"version": 1, "master_fingerprint": "fv1:0", "scrypt_salt": "ab" * 16}).encode()
    )
    assert passphrase_kdf(old) == PassphraseKDF("scrypt", "ab" * 16)
