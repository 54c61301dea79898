"""The access log through the real CLI: every search, restore, forget and rotate-key writes an intent
row before it acts and an outcome row after; key rotations keep the chain verifiable with the newest
key; an action whose intent row cannot be written does not happen."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from faceveil.ops.logged import pairs
from faceveil.storage import access_log, log_anchors, log_chain
from faceveil.storage.keys import MasterKey, load_key, write_key_file
from faceveil.storage.paths import Location

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from private import private  # noqa: E402

pytestmark = pytest.mark.slow  # end to end: Prefect flows on a Dask cluster, the CLI with its own server

PHOTOS = ("photos/astronaut.jpg", "photos/grace_hopper.png")
LOG = "access_log"  # in the state root


def _cli(*args, env=None):
    return subprocess.run(
        [sys.executable, "-m", "faceveil.cli", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "FACEVEIL_ACTOR": "dpo@example", **(env or {})},
        timeout=600,
    )


def _ok(r):
    assert r.returncode == 0, r.stdout + r.stderr
    return r


def _keys(folder, n):
    paths = []
    for i in range(n):
        path = folder / f"k{i + 1}.key"
        write_key_file(path, MasterKey.generate())
        paths.append(str(path))
    return paths


def _restored(out):
    return sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())  # OUT holds restored media only


def _rows(dest):
    return access_log.read(Location(str(private(dest))))


def _outcomes(dest):
    return [(r["action"], access_log.details(r).get("outcome")) for r in _rows(dest)]


@pytest.fixture(scope="module")
def anonymized(sample_archive, tmp_path_factory, prefect_server):
    """Two photos (two people), anonymized --reversible with key k1; its access log is empty."""
    root = tmp_path_factory.mktemp("log_cli")
    src = root / "src"
    for rel in PHOTOS:
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(sample_archive / rel, src / rel)
    (k1,) = _keys(root, 1)
    _ok(_cli("anonymize", str(src), str(root / "dest"), "--reversible", "--key", k1, "--workers", "1", "--quiet"))
    assert not (private(root / "dest") / LOG).exists()
    return root / "dest", k1, sample_archive / PHOTOS[1]


@pytest.fixture
def archive(anonymized, tmp_path, monkeypatch):
    """A copy of the archive, with its own $FACEVEIL_HOME (copies share their archive id, so the log
    heads anchored there)."""
    monkeypatch.setenv("FACEVEIL_HOME", str(tmp_path / "home"))
    dest, key, probe = anonymized
    shutil.copytree(dest, tmp_path / "archive")
    shutil.copytree(private(dest), private(tmp_path / "archive"))
    return tmp_path / "archive", key, str(probe)


def test_rotations_keep_the_chain_and_verify_names_an_edited_or_removed_row(archive, tmp_path):
    dest, k1, probe = archive
    k2, k3 = _keys(tmp_path, 3)[1:]
    found = json.loads(
        _ok(_cli("search", str(dest), "--probe", probe, "--reason", "case 1", "--json", "--key", k1)).stdout
    )["matches"]
    assert [m["rel_path"] for m in found] == [PHOTOS[1]]
    _ok(_cli("rotate-key", str(dest), "--key", k1, "--new-key", k2))
    refused = _cli("search", str(dest), "--probe", probe, "--reason", "case 1", "--key", k1)
    assert refused.returncode == 2 and "wrong key" in refused.stderr
    found = json.loads(
        _ok(_cli("search", str(dest), "--probe", probe, "--reason", "case 1", "--json", "--key", k2)).stdout
    )["matches"]
    assert [m["rel_path"] for m in found] == [PHOTOS[1]]
    _ok(
        _cli(
            "restore",
            str(dest),
            str(tmp_path / "out1"),
            "--probe",
            probe,
            "--reason",
            "case 1",
            "--workers",
            "1",
            "--key",
            k2,
        )
    )
    assert _restored(tmp_path / "out1") == [PHOTOS[1]]  # that person's photo only
    _ok(_cli("rotate-key", str(dest), "--key", k2, "--new-key", k3, "--reason", "k2 lost"))
    _ok(
        _cli(
            "restore",
            str(dest),
            str(tmp_path / "out2"),
            "--media",
            PHOTOS[0],
            "--reason",
            "case 2",
            "--workers",
            "1",
            "--key",
            k3,
        )
    )
    assert _restored(tmp_path / "out2") == [PHOTOS[0]]
    _ok(_cli("forget", str(dest), "--track", found[0]["ref"], "--reason", "erasure request", "--key", k3))

    steps = ["search", "rotate-key", "search", "restore", "rotate-key", "restore", "forget"]
    assert _outcomes(dest) == [(a, o) for a in steps for o in ("intent", "done")]
    rows = _rows(dest)
    fps = [load_key(k).fingerprint for k in (k1, k2, k3)]
    assert [r["key_fingerprint"] for r in rows] == [fps[0]] * 3 + [fps[1]] * 6 + [fps[2]] * 5
    assert access_log.details(rows[3])["rotation"]["old_key"] == fps[0]
    rotation = access_log.details(rows[9])["rotation"]
    assert (rotation["old_key"], rotation["new_key"]) == (fps[1], fps[2]) and rows[9]["reason"] == "k2 lost"
    for intent, outcome in pairs(rows):
        assert outcome is not None and access_log.details(outcome)["outcome"] == "done"
        assert outcome["action"] == intent["action"] and outcome["reason"] == intent["reason"]
    assert all(r["actor"] == "dpo@example" for r in rows)
    assert rows[7]["matched"] == [found[0]["ref"]]  # the restore --probe's outcome names what it restored
    heads = {a["seq"]: a["mac"] for a in log_anchors.gather(Location(str(private(dest)))) if "reports" in a["source"]}
    assert heads == {7: rows[6]["mac"], 11: rows[10]["mac"]}  # each restore run's report: its intent row

    r = _ok(_cli("access-log", str(dest), "--verify", "--key", k3))
    assert "access log intact" in r.stdout and "erasure request" in r.stdout
    assert _cli("access-log", str(dest), "--verify", "--key", k2).returncode == 1  # a retired key sees later spans fail

    log = private(dest) / LOG
    original = (log / "000000000002.parquet").read_bytes()
    t = pq.read_table(log / "000000000002.parquet")
    pq.write_table(
        t.set_column(t.schema.get_field_index("reason"), "reason", pa.array(["routine"])), log / "000000000002.parquet"
    )
    r = _cli("access-log", str(dest), "--verify", "--key", k3)
    assert r.returncode == 1 and "TAMPERED seq 2: MAC mismatch" in r.stderr, r.stderr
    assert all(line.startswith("TAMPERED seq 2:") for line in r.stderr.splitlines() if line.startswith("TAMPERED"))
    (log / "000000000002.parquet").write_bytes(original)
    _ok(_cli("access-log", str(dest), "--verify", "--key", k3))

    (log / "000000000006.parquet").unlink()
    r = _cli("access-log", str(dest), "--verify", "--key", k3)
    assert r.returncode == 1 and "TAMPERED seq 6: missing (row removed)" in r.stderr, r.stderr


def test_failed_restore_output_is_logged_after_its_intent(archive, tmp_path):
    dest, key, _ = archive
    out = tmp_path / "out"
    out.mkdir()
    (out / "photos").write_text("a file where the restored photos' folder should be")
    r = _cli("restore", str(dest), str(out), "--media", PHOTOS[0], "--reason", "case 3", "--workers", "1", "--key", key)
    assert r.returncode != 0
    assert (out / "photos").read_text().startswith("a file")
    assert _outcomes(dest) == [("restore", "intent"), ("restore", "failed")]
    intent, failed = _rows(dest)
    assert access_log.details(intent)["media"] == [PHOTOS[0]] and intent["reason"] == "case 3"
    error = access_log.details(failed)["error"]
    assert PHOTOS[0] in error or "Not a directory" in error, error
    assert access_log.details(failed)["intent_seq"] == intent["seq"]
    _ok(_cli("access-log", str(dest), "--verify", "--key", key))


def test_unwritable_access_log_stops_every_action(archive, tmp_path):
    dest, key, probe = archive
    (private(dest) / LOG).write_text("a file where the access log folder should be")
    vault = {p: p.read_bytes() for p in (private(dest) / "vault").rglob("*") if p.is_file()}
    runs = {
        "restore": _cli(
            "restore", str(dest), str(tmp_path / "out"), "--all", "--reason", "case 4", "--workers", "1", "--key", key
        ),
        "restore --probe": _cli(
            "restore",
            str(dest),
            str(tmp_path / "out"),
            "--probe",
            probe,
            "--reason",
            "case 4",
            "--workers",
            "1",
            "--key",
            key,
        ),
        "search": _cli(
            "search",
            str(dest),
            "--probe",
            probe,
            "--reason",
            "case 4",
            "--thumbnails",
            str(tmp_path / "thumbs"),
            "--key",
            key,
        ),
        "forget": _cli("forget", str(dest), "--track", f"{PHOTOS[1]}:0", "--reason", "erasure", "--key", key),
        "rotate-key": _cli("rotate-key", str(dest), "--key", key, "--new-key", _keys(tmp_path, 1)[0]),
    }
    for name, r in runs.items():
        assert r.returncode == 2 and "access log" in r.stderr and "not a folder" in r.stderr, (name, r.stderr)
        assert "Traceback" not in r.stderr, (name, r.stderr)
    assert not (tmp_path / "out").exists() and not (tmp_path / "thumbs").exists()
    assert {p: p.read_bytes() for p in (private(dest) / "vault").rglob("*") if p.is_file()} == vault


def test_a_cut_and_a_re_signed_row_are_named_with_the_auditor_log_key(archive, tmp_path):
    """A key holder cuts the last 2 rows and re-signs one with the master key: the master-key chain
    still verifies (and so would the anchors, were they wiped too), the auditor's log key names both."""
    dest, key, probe = archive
    log_key = tmp_path / "auditor.logkey"
    r = _ok(_cli("log-key", str(dest), str(log_key), "--key", key))
    assert "from seq 2 on" in r.stdout and log_key.stat().st_mode & 0o777 == 0o600
    again = _cli("log-key", str(dest), str(tmp_path / "again.logkey"), "--key", key)
    assert again.returncode == 2 and "set up already" in again.stderr and not (tmp_path / "again.logkey").exists()
    r = _ok(_cli("search", str(dest), "--probe", probe, "--reason", "case 9", "--key", key))
    rows = _rows(dest)
    assert [(r["action"], r["fs_tag"] is not None) for r in rows] == [
        ("log-key", False),
        ("log-key", True),
        ("search", True),
        ("search", True),
    ]
    assert f"access log: seq 4, head mac {rows[3]['mac']}" in r.stderr
    r = _ok(_cli("access-log", str(dest), "--log-key", str(log_key)))  # the auditor: no master key needed
    assert "access log intact" in r.stdout and "master-key MACs not checked" in r.stderr

    log = private(dest) / LOG
    for seq in (3, 4):
        (log / access_log.file_name(seq).split("/")[-1]).unlink()
    row = {**rows[1], "reason": "nothing to see"}
    row["mac"] = access_log._mac(log_chain.mac_key(load_key(key)), row)
    pq.write_table(pa.Table.from_pylist([row], schema=access_log.ACCESS_LOG), log / "000000000002.parquet")

    r = _cli("access-log", str(dest), "--verify", "--key", key)  # the anchors in this $FACEVEIL_HOME tell
    assert r.returncode == 1 and "TAMPERED cut: the log ends at seq 2 but an anchor" in r.stderr, r.stderr
    assert "TAMPERED rewritten: row seq 2's MAC differs from the anchored one" in r.stderr
    wiped = {"FACEVEIL_HOME": str(tmp_path / "elsewhere")}
    r = _cli("access-log", str(dest), "--verify", "--key", key, env=wiped)  # without them, the chain alone cannot
    assert r.returncode == 0 and "access log intact" in r.stdout and "--log-key" in r.stderr, r.stderr
    r = _cli("access-log", str(dest), "--verify", "--log-key", str(log_key), "--key", key, env=wiped)
    assert r.returncode == 1, r.stdout + r.stderr
    tampered = [line for line in r.stderr.splitlines() if line.startswith("TAMPERED")]
    assert tampered == [
        "TAMPERED seq 2: forward-secure tag mismatch (edited, or re-signed by a key holder)",
        "TAMPERED rows after seq 2 were removed: the log's sealing state is at seq 5",
    ], r.stderr
