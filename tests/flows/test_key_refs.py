"""Keys by reference: a file, a variable (also while a run holds the key variables out of its
environment), never the key in an error message."""

import os

import pytest

from faceveil.flows.key_refs import describe, env_names, resolve_key, withholding
from faceveil.storage.keys import BadKeyError, MasterKey, encode_key, write_key_file


def test_file_and_env_references(tmp_path, monkeypatch):
    key = MasterKey.generate()
    write_key_file(tmp_path / "a.key", key)
    assert resolve_key({"file": str(tmp_path / "a.key")}).fingerprint == key.fingerprint
    monkeypatch.setenv("ARCHIVE_KEY", encode_key(key))
    assert resolve_key({"env": "ARCHIVE_KEY"}).fingerprint == key.fingerprint
    assert describe({"env": "ARCHIVE_KEY"}) == "$ARCHIVE_KEY" and env_names({"env": "ARCHIVE_KEY"}) == ("ARCHIVE_KEY",)


def test_an_env_reference_resolves_while_withheld_from_child_processes(monkeypatch):
    import subprocess
    import sys

    key = MasterKey.generate()
    monkeypatch.setenv("ARCHIVE_KEY", encode_key(key))
    monkeypatch.setenv("FACEVEIL_KEY", encode_key(MasterKey.generate()))
    with withholding({"env": "ARCHIVE_KEY"}):
        assert "ARCHIVE_KEY" not in os.environ and "FACEVEIL_KEY" not in os.environ
        child = subprocess.run(
            [sys.executable, "-c", "import os; print(sorted(os.environ))"], capture_output=True, text=True
        ).stdout
        assert "ARCHIVE_KEY" not in child and "FACEVEIL_KEY" not in child
        assert resolve_key({"env": "ARCHIVE_KEY"}).fingerprint == key.fingerprint  # this process still reads it
    assert os.environ["ARCHIVE_KEY"] == encode_key(key)


def test_errors_never_carry_key_material(tmp_path, monkeypatch):
    key = MasterKey.generate()
    text = encode_key(key)
    bad = tmp_path / "open.key"
    bad.write_text(text)
    bad.chmod(0o644)
    monkeypatch.setenv("BROKEN_KEY", text[:-4])
    for ref, message in (
        ({"file": str(tmp_path / "none.key")}, "key file not found"),
        ({"file": str(bad)}, "readable by others"),
        ({"env": "UNSET_KEY_VARIABLE"}, "$UNSET_KEY_VARIABLE is not set"),
        ({"env": "BROKEN_KEY"}, "$BROKEN_KEY: malformed key"),
    ):
        with pytest.raises(BadKeyError) as e:
            resolve_key(ref)
        assert message in str(e.value) and text[len("faceveil-key-v1:") :][:12] not in str(e.value)
    with pytest.raises(ValueError, match="exactly one of"):
        resolve_key({"file": "a", "env": "B"})
