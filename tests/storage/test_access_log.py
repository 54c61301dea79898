import base64
import hashlib
import io
import multiprocessing
import os

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from faceveil.storage import access_log
from faceveil.storage.keys import BadKeyError, MasterKey, decode_key, encode_key
from faceveil.storage.paths import Location

PROBE = hashlib.sha256(b"probe image").hexdigest()


def _three(loc, key):
    access_log.append(loc, key, actor="alice", action="search", reason="case 17", probe_sha256=PROBE,
                      matched=["m1:3", "m2:0"], details={"threshold": 0.42})
    access_log.append(loc, key, actor="alice", action="restore", reason="court order 5", matched=["m1:3"])
    access_log.append(loc, key, actor="bob", action="forget", reason="erasure request", details={"n": 1})


def _log_files(loc):
    return sorted(p for p in os.listdir(loc.path(access_log.FOLDER)) if not p.startswith("."))


def _rewrite(loc, seq, **changes):
    rel = access_log.file_name(seq)
    row = pq.read_table(io.BytesIO(loc.read_bytes(rel))).to_pylist()[0]
    row.update(changes)
    buf = io.BytesIO()
    pq.write_table(pa.Table.from_pylist([row], schema=access_log.ACCESS_LOG), buf)
    loc.write_bytes(rel, buf.getvalue())


def test_three_rows_verify_clean_and_read_back(tmp_path):
    loc, key = Location(str(tmp_path)), MasterKey.generate()
    _three(loc, key)
    assert _log_files(loc) == ["000000000001.parquet", "000000000002.parquet", "000000000003.parquet"]
    rows = access_log.read(loc)
    assert [r["seq"] for r in rows] == [1, 2, 3]
    assert rows[0]["prev_mac"] == "0" * 64 and rows[1]["prev_mac"] == rows[0]["mac"]
    assert rows[0]["matched"] == ["m1:3", "m2:0"] and rows[0]["probe_sha256"] == PROBE
    assert rows[1]["probe_sha256"] is None and rows[2]["action"] == "forget"
    assert rows[0]["key_fingerprint"] == key.fingerprint and rows[0]["time"].tzinfo is not None
    assert access_log.verify(loc, key) == []
    assert [r["seq"] for r in access_log.tail(loc, 2)] == [2, 3]


def test_removed_middle_row_is_reported(tmp_path):
    loc, key = Location(str(tmp_path)), MasterKey.generate()
    _three(loc, key)
    os.unlink(loc.path(access_log.file_name(2)))
    problems = access_log.verify(loc, key)
    assert problems and all("seq 2" in p for p in problems)
    assert any("removed" in p for p in problems)


def test_removed_row_with_renumbering_is_reported(tmp_path):
    loc, key = Location(str(tmp_path)), MasterKey.generate()
    _three(loc, key)
    os.replace(loc.path(access_log.file_name(3)), loc.path(access_log.file_name(2)))
    problems = access_log.verify(loc, key)
    assert any("holds seq 3" in p for p in problems)
    assert any("seq 2: prev_mac" in p for p in problems)


def test_edited_row_is_reported(tmp_path):
    loc, key = Location(str(tmp_path)), MasterKey.generate()
    _three(loc, key)
    _rewrite(loc, 2, reason="routine check")
    problems = access_log.verify(loc, key)
    assert len(problems) == 1 and problems[0].startswith("seq 2: MAC mismatch")


def test_edited_row_with_recomputed_plain_hash_is_reported(tmp_path):
    loc, key = Location(str(tmp_path)), MasterKey.generate()
    _three(loc, key)
    _rewrite(loc, 1, matched=[], mac=hashlib.sha256(b"forged").hexdigest())
    problems = access_log.verify(loc, key)
    assert any(p.startswith("seq 1: MAC mismatch") for p in problems)
    assert any(p.startswith("seq 2: prev_mac") for p in problems)


@pytest.mark.parametrize("damage", [lambda b: b[: len(b) // 2], lambda b: b"garbage, not parquet", lambda b: b""])
def test_unreadable_file_is_reported_not_a_crash(tmp_path, damage):
    loc, key = Location(str(tmp_path)), MasterKey.generate()
    _three(loc, key)
    rel = access_log.file_name(2)
    loc.write_bytes(rel, damage(loc.read_bytes(rel)))
    problems = access_log.verify(loc, key)
    assert len(problems) == 1 and "seq 2" in problems[0] and "unreadable" in problems[0]
    with pytest.raises(access_log.AccessLogError, match="000000000002.parquet"):
        access_log.read(loc)


def test_unreadable_last_file_refuses_append(tmp_path):
    loc, key = Location(str(tmp_path)), MasterKey.generate()
    _three(loc, key)
    loc.write_bytes(access_log.file_name(3), b"junk")
    with pytest.raises(access_log.AccessLogError, match="unreadable"):
        access_log.append(loc, key, actor="a", action="search", reason="r")


def test_stray_file_is_reported(tmp_path):
    loc, key = Location(str(tmp_path)), MasterKey.generate()
    _three(loc, key)
    loc.write_bytes(f"{access_log.FOLDER}/notes.txt", b"hello")
    assert [p for p in access_log.verify(loc, key) if "notes.txt" in p]


def test_another_key_reports_every_row_and_cannot_append(tmp_path):
    loc, key, other = Location(str(tmp_path)), MasterKey.generate(), MasterKey.generate()
    _three(loc, key)
    problems = access_log.verify(loc, other)
    assert len(problems) == 3
    assert all(p.startswith(f"seq {i}: MAC mismatch") and key.fingerprint in p for i, p in enumerate(problems, 1))
    with pytest.raises(BadKeyError, match="nothing was written"):
        access_log.append(loc, other, actor="mallory", action="search", reason="curious")
    assert len(_log_files(loc)) == 3


def test_seq_continues_after_reopening(tmp_path):
    key = MasterKey.generate()
    _three(Location(str(tmp_path)), key)
    loc = Location(str(tmp_path))
    row = access_log.append(loc, key, actor="carol", action="search", reason="follow-up")
    assert row["seq"] == 4 and row["prev_mac"] == access_log.read(loc)[2]["mac"]
    assert access_log.verify(loc, key) == []


def test_empty_reason_and_bad_input_refused(tmp_path):
    loc, key = Location(str(tmp_path)), MasterKey.generate()
    for reason in ("", "   "):
        with pytest.raises(ValueError, match="reason"):
            access_log.append(loc, key, actor="a", action="search", reason=reason)
    with pytest.raises(ValueError, match="probe_sha256"):
        access_log.append(loc, key, actor="a", action="search", reason="r", probe_sha256="abc")
    with pytest.raises(ValueError, match="details"):
        access_log.append(loc, key, actor="a", action="search", reason="r", details={"x": object()})
    assert not loc.exists(access_log.FOLDER) and access_log.read(loc) == [] and access_log.verify(loc, key) == []


def test_key_never_written_or_shown(tmp_path):
    loc, key = Location(str(tmp_path)), MasterKey.generate()
    _three(loc, key)
    mac_key = key.derive("access-log")
    secrets = [key._b, key._b.hex().encode(), base64.urlsafe_b64encode(key._b), encode_key(key).encode(),
               mac_key, mac_key.hex().encode()]
    for name in _log_files(loc):
        data = open(os.path.join(loc.path(access_log.FOLDER), name), "rb").read()
        plain = pq.read_table(io.BytesIO(data)).to_pylist()[0]
        assert not any(s in data or s.decode("latin-1") in str(plain) for s in secrets)
    loc.write_bytes(access_log.file_name(2), b"junk")
    shown = " ".join(access_log.verify(loc, MasterKey.generate()) + access_log.verify(loc, key))
    assert not any(s.decode("latin-1") in shown for s in secrets)


def _appender(root: str, key_text: str, actor: str, n: int) -> None:
    key = decode_key(key_text, "test")
    loc = Location(root)
    for i in range(n):
        access_log.append(loc, key, actor=actor, action="search", reason=f"{actor} #{i}")


def test_concurrent_appenders_never_share_a_seq(tmp_path):
    key = MasterKey.generate()
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_appender, args=(str(tmp_path), encode_key(key), actor, 20)) for actor in ("p1", "p2")]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0]
    loc = Location(str(tmp_path))
    rows = access_log.read(loc)
    assert [r["seq"] for r in rows] == list(range(1, 41))
    assert sorted(r["reason"] for r in rows) == sorted(f"{a} #{i}" for a in ("p1", "p2") for i in range(20))
    assert access_log.verify(loc, key) == []
    assert not [n for n in os.listdir(loc.path(access_log.FOLDER)) if n.startswith(".")]
