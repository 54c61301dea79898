"""Accesses logged before they act: intent row, action, outcome row; no intent row, no action."""

import hashlib

import pytest

from faceveil.ops.logged import logged, pairs
from faceveil.storage import access_log
from faceveil.storage.keys import BadKeyError, MasterKey
from faceveil.storage.paths import Location

PROBE = hashlib.sha256(b"probe").hexdigest()


def _outcomes(loc):
    return [(r["action"], access_log.details(r).get("outcome")) for r in access_log.read(loc)]


def test_intent_is_written_before_the_action_and_done_after(tmp_path, monkeypatch):
    monkeypatch.setenv("FACEVEIL_ACTOR", "dpo@example")
    loc, key = Location(str(tmp_path)), MasterKey.generate()
    with logged(loc, key, "search", "case 1", probe_sha256=PROBE, details={"top": 5}) as out:
        seen = access_log.read(loc)  # the action sees its intent row already written
        out.matched, out.details = ["m1:2"], {"threshold": 0.9}
    assert [(r["action"], access_log.details(r)["outcome"]) for r in seen] == [("search", "intent")]
    intent, done = access_log.read(loc)
    assert intent["actor"] == done["actor"] == "dpo@example" and intent["probe_sha256"] == PROBE
    assert access_log.details(intent) == {"top": 5, "outcome": "intent"} and intent["matched"] == []
    assert access_log.details(done) == {"threshold": 0.9, "outcome": "done", "intent_seq": 1}
    assert done["matched"] == ["m1:2"] and pairs([intent, done]) == [(intent, done)]
    assert access_log.verify(loc, key) == []


def test_an_error_is_logged_as_failed_with_its_reason_and_raised(tmp_path):
    loc, key = Location(str(tmp_path)), MasterKey.generate()
    with pytest.raises(NotADirectoryError):
        with logged(loc, key, "restore", "case 2", targets=["m1:2"]):
            raise NotADirectoryError("out/photos: not a folder")
    rows = access_log.read(loc)
    assert _outcomes(loc) == [("restore", "intent"), ("restore", "failed")]
    assert access_log.details(rows[1])["error"] == "NotADirectoryError: out/photos: not a folder"
    assert rows[0]["matched"] == ["m1:2"] and pairs(rows) == [(rows[0], rows[1])]


def test_a_failure_without_exception_is_logged_as_failed(tmp_path):
    loc, key = Location(str(tmp_path)), MasterKey.generate()
    with logged(loc, key, "restore", "case 3") as out:
        out.error = "1 of 2 media not restored whole"
    assert access_log.details(access_log.read(loc)[1])["error"] == "1 of 2 media not restored whole"


def test_no_intent_row_no_action(tmp_path):
    loc, key = Location(str(tmp_path)), MasterKey.generate()
    loc.write_bytes(access_log.FOLDER, b"a file where the log folder should be")
    ran = []
    with pytest.raises(access_log.AccessLogError):
        with logged(loc, key, "forget", "erasure"):
            ran.append(True)
    assert not ran
    other = Location(str(tmp_path / "other"))
    access_log.append(other, MasterKey.generate(), actor="a", action="search", reason="r")
    with pytest.raises(BadKeyError, match="nothing was written"):
        with logged(other, key, "forget", "erasure"):
            ran.append(True)
    assert not ran and len(access_log.read(other)) == 1


def test_hand_over_makes_the_outcome_row_the_rotation_row(tmp_path):
    loc, old, new = Location(str(tmp_path)), MasterKey.generate(), MasterKey.generate()
    with logged(loc, old, "rotate-key", "yearly", details={"new_key": new.fingerprint}) as out:
        out.hand_over_to = new
        out.details = {"data_keys": 3}
    intent, done = access_log.read(loc)
    assert intent["key_fingerprint"] == old.fingerprint and done["key_fingerprint"] == new.fingerprint
    d = access_log.details(done)
    assert d["outcome"] == "done" and d["intent_seq"] == 1 and d["rotation"]["old_key"] == old.fingerprint
    assert access_log.verify(loc, new) == []
    # a rotation that fails after the vault moved still hands the log over, as 'failed'
    newer = MasterKey.generate()
    with pytest.raises(RuntimeError):
        with logged(loc, new, "rotate-key", "again") as out:
            out.hand_over_to = newer
            raise RuntimeError("index unreadable")
    last = access_log.read(loc)[-1]
    assert last["key_fingerprint"] == newer.fingerprint and access_log.details(last)["outcome"] == "failed"
    assert access_log.verify(loc, newer) == []


def test_the_head_is_printed_and_anchored_outside_the_state_root(tmp_path, monkeypatch, capsys):
    import json

    from faceveil.storage import log_anchors

    monkeypatch.setenv("FACEVEIL_HOME", str(tmp_path / "home"))
    loc, key = Location(str(tmp_path / "state")), MasterKey.generate()
    with logged(loc, key, "search", "case 5") as out:
        out.matched = ["m1:2"]
    with pytest.raises(RuntimeError):
        with logged(loc, key, "restore", "case 6"):
            raise RuntimeError("no space left")
    rows = access_log.read(loc)
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith(f"access log: seq 2, head mac {rows[1]['mac']} (anchored in {tmp_path / 'home'}")
    assert err[1].startswith(f"access log: seq 4, head mac {rows[3]['mac']}")
    path = log_anchors.anchor_file(loc)
    assert path.parent == tmp_path / "home" / "anchors" and path.stat().st_mode & 0o777 == 0o600
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [(a["seq"], a["mac"], a["action"]) for a in lines] == [
        (2, rows[1]["mac"], "search"),
        (4, rows[3]["mac"], "restore"),
    ]
    assert access_log.verify(loc, key, anchors=log_anchors.gather(loc)) == []
    for seq in (3, 4):
        (tmp_path / "state" / access_log.file_name(seq)).unlink()
    problems = access_log.verify(loc, key, anchors=log_anchors.gather(loc))
    assert (
        len(problems) == 1
        and problems[0].startswith("cut: the log ends at seq 2 but an anchor")
        and problems[0].endswith("by restore says seq 4")
    )


def test_an_unwritable_anchor_does_not_stop_the_action(tmp_path, monkeypatch, capsys):
    (tmp_path / "home").write_text("a file where FACEVEIL_HOME should be")
    monkeypatch.setenv("FACEVEIL_HOME", str(tmp_path / "home"))
    loc, key = Location(str(tmp_path / "state")), MasterKey.generate()
    with logged(loc, key, "forget", "erasure") as out:
        out.matched = ["m1:1"]
    assert _outcomes(loc) == [("forget", "intent"), ("forget", "done")]
    err = capsys.readouterr().err
    assert "access log: seq 2, head mac" in err and "(not anchored: " in err, err
