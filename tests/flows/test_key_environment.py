"""Keys stay in their process: the Dask workers and the Prefect API server a run starts never have a
key variable in their environment (read from /proc/PID/environ while the run is going)."""

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from faceveil.storage.keys import MasterKey, encode_key

pytestmark = [
    pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs /proc (Linux)"),
    pytest.mark.slow,
]  # the CLI runs its flow, Dask workers and Prefect server


def _environ(pid: int) -> bytes | None:
    try:
        return Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:  # gone already, or not ours
        return None


def test_workers_and_server_never_see_the_key(sample_archive, tmp_path):
    src = tmp_path / "src"
    (src / "cameras").mkdir(parents=True)
    shutil.copytree(sample_archive / "cameras" / "lobby", src / "cameras" / "lobby")
    secret = encode_key(MasterKey.generate())
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}  # the run starts its own server
    env |= {
        "FACEVEIL_KEY": secret,
        "FACEVEIL_PASSPHRASE": "not-to-be-inherited",
        "PREFECT_HOME": str(tmp_path / "prefect"),
    }
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "faceveil.cli",
            "anonymize",
            str(src),
            str(tmp_path / "dest"),
            "--reversible",
            "--quiet",
            "--workers",
            "2",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    seen: dict[int, tuple[str, bytes]] = {}
    own = b""  # the control: the CLI itself was given the key, and /proc shows it
    try:
        parent = psutil.Process(proc.pid)
        forked: dict[int, float] = {}
        parent_cmd = " ".join(
            [
                sys.executable,
                "-m",
                "faceveil.cli",
                "anonymize",
                str(src),
                str(tmp_path / "dest"),
                "--reversible",
                "--quiet",
                "--workers",
                "2",
            ]
        )
        while proc.poll() is None:
            own = own or _environ(proc.pid) or b""  # empty until the new process has exec'd
            try:
                children = parent.children(recursive=True)
            except psutil.NoSuchProcess:
                break
            for child in children:
                if child.pid not in seen and (data := _environ(child.pid)) is not None:
                    try:
                        cmd = " ".join(child.cmdline())
                    except psutil.Error:
                        cmd = "?"
                    # a child still in the CLI's image (forked, not yet exec'd into the program it starts) is
                    # the CLI's own memory: looked at again until it execs, and kept only if it never does
                    first = forked.setdefault(child.pid, time.monotonic())
                    if cmd == parent_cmd and time.monotonic() - first < 2.0:
                        continue
                    seen[child.pid] = (cmd, data)
            time.sleep(0.05)
        out, err = proc.communicate(timeout=600)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err.decode()[-2000:]
    assert secret.encode() in own
    kinds = {
        "server": [p for p, (c, _) in seen.items() if "uvicorn" in c],
        "worker": [p for p, (c, _) in seen.items() if "multiprocessing" in c],
    }
    assert kinds["server"], f"the run's Prefect server was not seen: {[c for c, _ in seen.values()]}"
    assert len(kinds["worker"]) >= 2, f"the run's workers were not seen: {[c for c, _ in seen.values()]}"
    for pid, (cmd, data) in seen.items():
        assert b"FACEVEIL_KEY=" not in data and b"FACEVEIL_PASSPHRASE=" not in data, cmd
        assert secret.encode() not in data and b"not-to-be-inherited" not in data, cmd


def test_no_key_or_data_key_in_any_store_after_a_reversible_run_and_a_restore(sample_archive, tmp_path):
    """Byte scans after a reversible anonymize (vault and identity index) and a restore, each with its
    own Prefect server: neither the master key nor any per-track data key is in Prefect's database
    and home, FACEVEIL_HOME (MLflow store, models), DEST, OUT or the temporary folder (scratch)."""
    import base64

    from faceveil.storage.keys import load_key, write_key_file
    from faceveil.storage.paths import Location
    from faceveil.storage.vault import track_keys

    src = tmp_path / "src"
    (src / "photos").mkdir(parents=True)
    (src / "cameras").mkdir()
    shutil.copy(sample_archive / "photos" / "grace_hopper.png", src / "photos" / "grace_hopper.png")
    shutil.copytree(sample_archive / "cameras" / "lobby", src / "cameras" / "lobby")
    key_file = tmp_path / "keys" / "archive.key"
    key_file.parent.mkdir()
    write_key_file(key_file, MasterKey.generate())
    master = load_key(key_file)
    homes = {"PREFECT_HOME": tmp_path / "prefect", "FACEVEIL_HOME": tmp_path / "home", "TMPDIR": tmp_path / "tmp"}
    homes["TMPDIR"].mkdir()  # scratch and every temporary file of the runs
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"} | {k: str(v) for k, v in homes.items()}
    for args in (
        ["anonymize", str(src), str(tmp_path / "dest"), "--reversible", "--quiet", "--workers", "2"],
        ["restore", str(tmp_path / "dest"), str(tmp_path / "out"), "--all", "--workers", "2"],
    ):
        r = subprocess.run(
            [sys.executable, "-m", "faceveil.cli", *args, "--key", str(key_file)],
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert r.returncode == 0, r.stderr[-2000:]
    dest = Location(str(tmp_path / "dest.faceveil-private"))  # the archive's state root
    media = [p.stem for p in (tmp_path / "dest.faceveil-private" / "vault" / "keys").glob("*.parquet")]
    data_keys = [k for mid in media for k in track_keys(dest, master, mid)[0].values()]
    assert len(data_keys) >= 2
    raw = master._b
    needles = [
        raw,
        base64.urlsafe_b64encode(raw),
        base64.b64encode(raw),
        raw.hex().encode(),
        *data_keys,
        *(base64.b64encode(k) for k in data_keys),
        *(k.hex().encode() for k in data_keys),
    ]
    assert any(n in key_file.read_bytes() for n in needles)  # the control: the key file itself is found
    roots = [*homes.values(), tmp_path / "dest", tmp_path / "dest.faceveil-private", tmp_path / "out"]
    files = [p for root in roots if root.exists() for p in root.rglob("*") if p.is_file()]
    assert any(p.name.startswith("prefect.db") for p in files), "Prefect's database was not found to scan"
    for p in files:
        data = p.read_bytes()
        assert not any(n in data for n in needles), f"{p} holds the master key or a data key"
