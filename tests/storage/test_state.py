"""Where an archive's private state lives (storage/state.py): beside DEST by default, never inside it,
old archives' DEST/_faceveil read in place and moved out; restore's OUT kept apart; the settings that
refuse an overlap or a leak share outside [0, 1]."""

import sqlite3

import pytest

from faceveil.config import AnonymizeConfig
from faceveil.storage.state import (
    StateError,
    check_allowed_out,
    check_apart,
    check_restore_out,
    default_state_url,
    find_state,
    migrate,
)


def test_default_is_a_sibling_of_dest(tmp_path):
    assert default_state_url(str(tmp_path / "out")) == str(tmp_path / "out.faceveil-private")
    assert default_state_url(str(tmp_path / "out") + "/") == str(tmp_path / "out.faceveil-private")
    assert default_state_url("s3://bucket/anon/") == "s3://bucket/anon.faceveil-private"
    with pytest.raises(StateError, match="bucket's root"):
        default_state_url("s3://bucket")
    with pytest.raises(StateError, match="filesystem root"):
        default_state_url("/")


@pytest.mark.parametrize("state", ["out", "out/private", "."])
def test_state_and_dest_never_overlap(tmp_path, state):
    with pytest.raises(StateError, match="overlap"):
        check_apart(str(tmp_path / "out"), str(tmp_path / state))
    with pytest.raises(StateError, match="overlap"):
        AnonymizeConfig.of(src=str(tmp_path / "in"), dest=str(tmp_path / "out"), state=str(tmp_path / state))


def test_state_apart_from_dest_and_source(tmp_path):
    check_apart(str(tmp_path / "out"), str(tmp_path / "out-private"))  # a name that merely starts alike
    check_apart("s3://b/out", "s3://b/out.faceveil-private")
    check_apart(str(tmp_path / "out"), "s3://b/out")  # another filesystem
    with pytest.raises(StateError, match="source"):
        check_apart(str(tmp_path / "out"), str(tmp_path / "state"), str(tmp_path / "state/cams"))
    c = AnonymizeConfig.of(src=str(tmp_path / "in"), dest=str(tmp_path / "in/out"))  # DEST (and its state) inside SRC
    assert c.state == str(tmp_path / "in/out.faceveil-private")


def test_restore_out_apart_from_dest_and_state(tmp_path):
    dest, state = str(tmp_path / "dest"), str(tmp_path / "dest.faceveil-private")
    for out in (dest, dest + "/sub", state, state + "/x", str(tmp_path)):
        with pytest.raises(StateError, match="nothing was written"):
            check_restore_out(out, dest, state)
    check_restore_out(str(tmp_path / "restored"), dest, state)
    check_allowed_out(str(tmp_path / "cases/42"), [str(tmp_path / "cases")])
    with pytest.raises(StateError, match="not inside an allowed restore root"):
        check_allowed_out(str(tmp_path / "elsewhere"), [str(tmp_path / "cases")])
    with pytest.raises(StateError, match="none set"):
        check_allowed_out(str(tmp_path / "cases/42"), [])


def test_old_archives_are_read_in_place_then_moved(tmp_path):
    dest = tmp_path / "out"
    legacy = dest / "_faceveil"
    (legacy / "media").mkdir(parents=True)
    (legacy / "media" / "m1.parquet").write_bytes(b"part")
    (legacy / "mlflow").mkdir()
    db = legacy / "mlflow" / "mlflow.db"
    with sqlite3.connect(db) as con:  # an MLflow store that names its artifact root by path
        con.execute("CREATE TABLE experiments (artifact_location TEXT)")
        con.execute("CREATE TABLE runs (artifact_uri TEXT)")
        con.execute("INSERT INTO experiments VALUES (?)", (legacy.as_uri() + "/mlflow/artifacts",))
        con.execute("INSERT INTO runs VALUES (?)", (legacy.as_uri() + "/mlflow/artifacts/1/abc",))
    assert find_state(str(dest)).root == str(legacy)  # read in place
    state = tmp_path / "out.faceveil-private"
    assert "moved" in migrate(str(dest), str(state))
    assert not legacy.exists() and (state / "media" / "m1.parquet").read_bytes() == b"part"
    assert find_state(str(dest)).root == str(state)
    with sqlite3.connect(state / "mlflow" / "mlflow.db") as con:
        assert (
            con.execute("SELECT artifact_location FROM experiments").fetchone()[0]
            == state.as_uri() + "/mlflow/artifacts"
        )
        assert con.execute("SELECT artifact_uri FROM runs").fetchone()[0].startswith(state.as_uri() + "/mlflow/")
    assert migrate(str(dest), str(state)) is None  # nothing left to move
    (legacy / "media").mkdir(parents=True)
    (legacy / "media" / "m2.parquet").write_bytes(b"other")
    with pytest.raises(StateError, match="both hold files"):  # never merged silently
        migrate(str(dest), str(state))


def test_max_leak_is_a_fraction_and_the_gate_says_when_it_is_off(tmp_path):
    base = {"src": str(tmp_path / "in"), "dest": str(tmp_path / "out")}
    for bad in (-0.01, 1.5, 5.0):
        with pytest.raises(ValueError, match="max_leak is a fraction"):
            AnonymizeConfig.of(**base, max_leak=bad)
    assert AnonymizeConfig.of(**base).gate_off() is None
    assert "100%" in AnonymizeConfig.of(**base, max_leak=1.0).gate_off()
    assert "--check-every 0" in AnonymizeConfig.of(**base, check_every_s=0).gate_off()
    assert "keep" in AnonymizeConfig.of(**base, method="keep", pulse="scrub").gate_off()
