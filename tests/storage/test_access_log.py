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
    access_log.append(
        loc,
        key,
        actor="alice",
        action="search",
        reason="case 17",
        probe_sha256=PROBE,
        matched=["m1:3", "m2:0"],
        details={"threshold": 0.42},
    )
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
    secrets = [
        key._b,
        key._b.hex().encode(),
        base64.urlsafe_b64encode(key._b),
        encode_key(key).encode(),
        mac_key,
        mac_key.hex().encode(),
    ]
    for name in _log_files(loc):
        data = open(os.path.join(loc.path(access_log.FOLDER), name), "rb").read()
        plain = pq.read_table(io.BytesIO(data)).to_pylist()[0]
        assert not any(s in data or s.decode("latin-1") in str(plain) for s in secrets)
    loc.write_bytes(access_log.file_name(2), b"junk")
    shown = " ".join(access_log.verify(loc, MasterKey.generate()) + access_log.verify(loc, key))
    assert not any(s.decode("latin-1") in shown for s in secrets)


def _appender(root: str, key_text: str, actor: str, n: int, start=None) -> None:
    key = decode_key(key_text, "test")
    loc = Location(root)
    if start is not None:
        start.wait(60)
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


# ---------------------------------------------------------------- key rotation


def _rotated_twice(loc):
    """k1: three rows, rotation to k2, one row, rotation to k3, one row (seq 1-7)."""
    k1, k2, k3 = MasterKey.generate(), MasterKey.generate(), MasterKey.generate()
    _three(loc, k1)
    access_log.hand_over(loc, k1, k2, actor="ops", reason="yearly rotation", details={"outcome": "done"})
    access_log.append(loc, k2, actor="alice", action="search", reason="case 18", probe_sha256=PROBE)
    access_log.hand_over(loc, k2, k3, actor="ops", reason="key leaked")
    access_log.append(loc, k3, actor="alice", action="restore", reason="case 18", matched=["m1:3"])
    return k1, k2, k3


def test_rotation_keeps_the_chain_verifiable_with_the_newest_key(tmp_path):
    loc = Location(str(tmp_path))
    k1, k2, k3 = _rotated_twice(loc)
    rows = access_log.read(loc)
    assert [r["seq"] for r in rows] == list(range(1, 8))
    assert [r["key_fingerprint"] for r in rows] == [k1.fingerprint] * 3 + [k2.fingerprint] * 2 + [k3.fingerprint] * 2
    rotation = access_log.details(rows[3])["rotation"]
    assert rotation["old_key"] == k1.fingerprint and rotation["new_key"] == k2.fingerprint
    assert access_log.details(rows[3])["outcome"] == "done" and rows[3]["action"] == "rotate-key"
    assert access_log.verify(loc, k3) == []
    # a retired key appends nothing, and cannot verify the spans after its own
    for old in (k1, k2):
        with pytest.raises(BadKeyError, match="nothing was written"):
            access_log.append(loc, old, actor="mallory", action="search", reason="curious")
    assert access_log.verify(loc, k2) and access_log.verify(loc, k1)
    assert len(_log_files(loc)) == 7


@pytest.mark.parametrize("seq", [1, 4, 5, 6, 7])
def test_edited_row_in_any_span_is_named(tmp_path, seq):
    loc = Location(str(tmp_path))
    _, _, k3 = _rotated_twice(loc)
    _rewrite(loc, seq, reason="nothing to see")
    problems = access_log.verify(loc, k3)
    assert problems and all(p.startswith(f"seq {seq}:") for p in problems), problems
    assert any("MAC mismatch" in p for p in problems)


@pytest.mark.parametrize("seq", [2, 4, 6])
def test_removed_row_in_any_span_is_named(tmp_path, seq):
    loc = Location(str(tmp_path))
    _, _, k3 = _rotated_twice(loc)
    os.unlink(loc.path(access_log.file_name(seq)))
    problems = access_log.verify(loc, k3)
    assert f"seq {seq}: missing (row removed)" in problems
    if seq in (4, 6):  # a rotation row: the spans before it cannot be opened with the newest key
        assert all(any(p.startswith(f"seq {s}: MAC mismatch") for p in problems) for s in range(1, seq))
    else:
        assert all(p.startswith(f"seq {seq}:") for p in problems), problems


def test_reordered_rows_across_a_rotation_are_named(tmp_path):
    loc = Location(str(tmp_path))
    _, _, k3 = _rotated_twice(loc)
    a, b = loc.path(access_log.file_name(3)), loc.path(access_log.file_name(4))
    os.replace(a, a + ".x")
    os.replace(b, a)
    os.replace(a + ".x", b)
    problems = access_log.verify(loc, k3)
    assert any("holds seq 4" in p for p in problems) and any("holds seq 3" in p for p in problems)


def test_edited_sealed_key_of_a_rotation_row_is_named(tmp_path):
    import json

    loc = Location(str(tmp_path))
    _, _, k3 = _rotated_twice(loc)
    row = access_log.read(loc)[5]
    d = access_log.details(row)
    d["rotation"]["previous_key_sealed"] = "00" * 60
    _rewrite(loc, 6, details_json=json.dumps(d, sort_keys=True, separators=(",", ":")))
    problems = access_log.verify(loc, k3)
    assert any(p.startswith("seq 6: MAC mismatch") for p in problems)
    assert any(p.startswith("seq 6: the rotation row's sealed key") for p in problems)
    assert all(p.startswith("seq 6:") or "cannot be checked" in p for p in problems)


def test_retired_key_cannot_rewrite_its_own_span_unnoticed(tmp_path):
    """The holder of k1 re-MACs rows 1-3 after editing row 2: the rotation row (MACed under k2) pins
    row 3's old MAC."""
    from faceveil.storage import log_chain

    loc = Location(str(tmp_path))
    k1, _, k3 = _rotated_twice(loc)
    key, prev = log_chain.mac_key(k1), access_log.GENESIS_MAC
    for seq in (1, 2, 3):
        row = access_log.read(loc)[seq - 1]
        row.update(prev_mac=prev, reason="routine" if seq == 2 else row["reason"])
        row["mac"] = access_log._mac(key, row)
        _rewrite(loc, seq, **{k: v for k, v in row.items() if k != "seq"})
        prev = row["mac"]
    # as far as the old key can see, its span is intact
    assert all(int(p.split(":")[0][4:]) >= 4 for p in access_log.verify(loc, k1))
    problems = access_log.verify(loc, k3)
    assert problems and any(p.startswith("seq 4: prev_mac") for p in problems)


def test_no_key_in_rotation_rows(tmp_path):
    from faceveil.storage import log_chain

    loc = Location(str(tmp_path))
    keys = _rotated_twice(loc)
    secrets = [s for k in keys for s in (k._b, log_chain.mac_key(k))]
    secrets += [s.hex().encode() for s in secrets]
    for name in _log_files(loc):
        data = open(os.path.join(loc.path(access_log.FOLDER), name), "rb").read()
        assert not any(s in data for s in secrets)


def test_unwritable_log_folder_is_an_access_log_error(tmp_path):
    loc, key = Location(str(tmp_path)), MasterKey.generate()
    loc.write_bytes(access_log.FOLDER, b"a file where the log folder should be")
    with pytest.raises(access_log.AccessLogError, match="not a folder"):
        access_log.append(loc, key, actor="a", action="search", reason="r")


# ---------------------------------------------------------------- the auditor's log key, anchors


def _resign(loc, master, seqs, **changes):
    """What a restorer can do: edit rows and MAC them again with the master key (and tag them with
    the one forward-secure key the state root gives a key holder, the next row's)."""
    from faceveil.storage import auditor_key, log_chain, log_seal

    state = log_seal.read_state(loc)
    k_next = log_seal.open_key(loc, state, log_chain.mac_key(master))
    prev = access_log.read(loc)[seqs[0] - 2]["mac"] if seqs[0] > 1 else access_log.GENESIS_MAC
    for seq in seqs:
        row = {**access_log.read(loc)[seq - 1], **(changes if seq == seqs[0] else {}), "prev_mac": prev}
        row["mac"] = access_log._mac(log_chain.mac_key(master), row)
        row["fs_tag"] = auditor_key.tag(k_next, access_log._payload(row))
        _rewrite(loc, seq, **{k: v for k, v in row.items() if k != "seq"})
        prev = row["mac"]


def test_tags_verify_with_the_log_key_alone(tmp_path):
    from faceveil.storage import log_seal

    loc, key = Location(str(tmp_path)), MasterKey.generate()
    access_log.append(loc, key, actor="a", action="search", reason="before the log key")
    log_key = access_log.set_up_seal(loc, key)
    assert log_key.start == 2
    _three(loc, key)
    rows = access_log.read(loc)
    assert rows[0]["fs_tag"] is None and all(len(r["fs_tag"]) == 64 for r in rows[1:])
    assert access_log.verify(loc, None, log_key=log_key) == [] and access_log.verify(loc, key, log_key=log_key) == []
    assert sorted(log_seal.states(loc)) == [5]  # the next row's key only: each append removed the one before
    state = log_seal.read_state(loc)
    assert (state.epoch, state.start, state.key_fingerprint) == (5, 2, key.fingerprint)
    other = access_log.set_up_seal(Location(str(tmp_path / "other")), key)
    problems = access_log.verify(loc, key, log_key=other)
    assert len(problems) == 1 and "another log key" in problems[0] and log_key.id in problems[0]
    with pytest.raises(ValueError, match="set up already"):
        access_log.set_up_seal(loc, key)


def test_a_row_re_signed_by_a_key_holder_is_caught_by_the_log_key_only(tmp_path):
    loc, key = Location(str(tmp_path)), MasterKey.generate()
    log_key = access_log.set_up_seal(loc, key)
    _three(loc, key)
    _resign(loc, key, [2, 3], reason="routine check", matched=[])
    assert access_log.read(loc)[1]["reason"] == "routine check"
    assert access_log.verify(loc, key) == []  # the master-key chain is whole again
    problems = access_log.verify(loc, key, log_key=log_key)
    assert [p.split(":")[0] for p in problems] == ["seq 2", "seq 3"], problems
    assert all("forward-secure tag mismatch" in p for p in problems)
    assert access_log.verify(loc, None, log_key=log_key) == problems


def test_cutting_the_last_two_rows_shows_in_the_state_and_the_anchors(tmp_path, monkeypatch):
    from faceveil.storage import log_anchors

    monkeypatch.setenv("FACEVEIL_HOME", str(tmp_path / "home"))
    loc, key = Location(str(tmp_path / "state")), MasterKey.generate()
    log_key = access_log.set_up_seal(loc, key)
    for i in range(5):
        row = access_log.append(loc, key, actor="a", action="search", reason=f"case {i}")
        log_anchors.record(loc, row, "search")
    anchored = access_log.read(loc)
    for seq in (4, 5):
        os.unlink(loc.path(access_log.file_name(seq)))
    assert access_log.verify(loc, key) == []  # the chain alone cannot tell
    assert access_log.verify(loc, key, log_key=log_key) == [
        "rows after seq 3 were removed: the log's sealing state is at seq 6"
    ]
    anchors = log_anchors.gather(loc)
    assert [a["seq"] for a in anchors] == [1, 2, 3, 4, 5] and {a["action"] for a in anchors} == {"search"}
    problems = access_log.verify(loc, key, anchors=anchors)
    assert len(problems) == 1 and problems[0].startswith("cut: the log ends at seq 3 but an anchor recorded at ")
    assert problems[0].endswith("by search says seq 5")
    # a restorer who rewrites row 3 too is named by the anchor of row 3
    _resign(loc, key, [3], reason="nothing")
    problems = access_log.verify(loc, key, anchors=anchors)
    assert any(p.startswith("rewritten: row seq 3's MAC differs from the anchored one") for p in problems), problems
    # the next append keeps the gap: seq 6, where the sealing state is
    row = access_log.append(loc, key, actor="b", action="search", reason="after the cut")
    assert row["seq"] == 6 and row["prev_mac"] != anchored[4]["mac"]
    problems = access_log.verify(loc, key, log_key=log_key, anchors=anchors)
    assert "seq 4: missing (row removed)" in problems and "seq 5: missing (row removed)" in problems
    assert any(p.startswith("removed: row seq 5, anchored at ") for p in problems)
    assert any(p.startswith("seq 3: forward-secure tag mismatch") for p in problems)


def test_concurrent_appenders_with_a_log_key_never_share_a_seq_and_tag_every_row(tmp_path):
    from faceveil.storage import log_seal

    key = MasterKey.generate()
    log_key = access_log.set_up_seal(Location(str(tmp_path)), key)
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Barrier(2)  # both appenders begin together
    procs = [
        ctx.Process(target=_appender, args=(str(tmp_path), encode_key(key), actor, 15, start)) for actor in ("p1", "p2")
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0]
    loc = Location(str(tmp_path))
    assert [r["seq"] for r in access_log.read(loc)] == list(range(1, 31))
    assert access_log.verify(loc, None, log_key=log_key) == [] and access_log.verify(loc, key) == []
    assert sorted(log_seal.states(loc)) == [31]


def test_an_old_log_without_tags_reads_verifies_and_takes_a_log_key(tmp_path):
    loc, key = Location(str(tmp_path)), MasterKey.generate()
    _three(loc, key)
    old = pa.schema([f for f in access_log.ACCESS_LOG if f.name != "fs_tag"])
    for seq in (1, 2, 3):  # as logs were written before the column
        rel = access_log.file_name(seq)
        t = pq.read_table(io.BytesIO(loc.read_bytes(rel))).select(old.names)
        buf = io.BytesIO()
        pq.write_table(t, buf)
        loc.write_bytes(rel, buf.getvalue())
        assert "fs_tag" not in pq.read_schema(io.BytesIO(loc.read_bytes(rel))).names
    assert [r["fs_tag"] for r in access_log.read(loc)] == [None] * 3 and access_log.verify(loc, key) == []
    log_key = access_log.set_up_seal(loc, key)
    access_log.append(loc, key, actor="a", action="search", reason="after")
    assert log_key.start == 4 and access_log.verify(loc, key, log_key=log_key) == []


def test_rotation_re_wraps_the_sealing_state_even_after_a_crash(tmp_path, monkeypatch):
    from faceveil.storage import log_seal

    loc, k1, k2 = Location(str(tmp_path)), MasterKey.generate(), MasterKey.generate()
    log_key = access_log.set_up_seal(loc, k1)
    _three(loc, k1)
    access_log.hand_over(loc, k1, k2, actor="ops", reason="rotation")
    assert log_seal.read_state(loc).key_fingerprint == k2.fingerprint
    access_log.append(loc, k2, actor="a", action="search", reason="with k2")
    with pytest.raises(BadKeyError):
        access_log.append(loc, k1, actor="a", action="search", reason="with k1")
    assert access_log.verify(loc, k2, log_key=log_key) == []
    # the process stops after the rotation row, before the state moves on: it is left for k3's key
    k3 = MasterKey.generate()
    real = log_seal.write_state
    monkeypatch.setattr(
        log_seal, "write_state", lambda *a, **k: (_ for _ in ()).throw(log_seal.SealStateError("disk full"))
    )
    with pytest.raises(access_log.AccessLogError, match="seq 6 was written, but disk full"):
        access_log.hand_over(loc, k2, k3, actor="ops", reason="rotation")
    monkeypatch.setattr(log_seal, "write_state", real)
    assert log_seal.read_state(loc).key_fingerprint == k2.fingerprint
    assert any("behind its last row 6" in p for p in access_log.verify(loc, k3, log_key=log_key))
    access_log.append(loc, k3, actor="a", action="search", reason="with k3")  # opened through the rotation row
    assert log_seal.read_state(loc).key_fingerprint == k3.fingerprint
    assert access_log.verify(loc, k3, log_key=log_key) == []


def test_rows_untagged_after_tagged_ones_show_without_the_log_key(tmp_path):
    import shutil

    from faceveil.storage import log_seal

    loc, key = Location(str(tmp_path)), MasterKey.generate()
    log_key = access_log.set_up_seal(loc, key)
    _three(loc, key)
    shutil.rmtree(loc.path(log_seal.FOLDER))
    access_log.append(loc, key, actor="mallory", action="restore", reason="unsealed")
    problems = access_log.verify(loc, key)
    assert problems[0].startswith("seq 4: no forward-secure tag") and "sealing state is missing" in problems[1]
    problems = access_log.verify(loc, key, log_key=log_key)
    assert problems[0].startswith("seq 4: no forward-secure tag") and "sealing state is missing" in problems[1]


def test_log_key_is_never_in_the_state_root_nor_shown(tmp_path):
    import pickle

    from faceveil.storage import auditor_key, log_seal

    loc, key = Location(str(tmp_path / "state")), MasterKey.generate()
    log_key = access_log.set_up_seal(loc, key)
    _three(loc, key)
    keys = [log_key.key_at(s) for s in range(1, 6)]  # K1..K5: every key the log has used or will use next
    needles = [k for k in keys] + [k.hex().encode() for k in keys] + [base64.urlsafe_b64encode(k) for k in keys]
    files = [p for p in (tmp_path / "state").rglob("*") if p.is_file()]
    assert any(p.parent.name == log_seal.FOLDER for p in files)
    assert not any(n in p.read_bytes() for p in files for n in needles)
    assert log_key.id in repr(log_key) and not any(n.decode("latin-1") in repr(log_key) for n in needles[5:])
    with pytest.raises(TypeError):
        pickle.dumps(log_key)
    path = tmp_path / "auditor.logkey"
    auditor_key.write_log_key_file(path, log_key)
    assert path.stat().st_mode & 0o777 == 0o600
    again = auditor_key.load_log_key(path)
    assert (again.id, again.start) == (log_key.id, log_key.start)
    with pytest.raises(BadKeyError, match="already exists"):
        auditor_key.write_log_key_file(path, log_key)
    os.chmod(path, 0o644)
    with pytest.raises(BadKeyError, match="readable by others"):
        auditor_key.load_log_key(path)
