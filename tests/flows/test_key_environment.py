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

pytestmark = pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs /proc (Linux)")


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
    env |= {"FACEVEIL_KEY": secret, "FACEVEIL_PASSPHRASE": "not-to-be-inherited",
            "PREFECT_HOME": str(tmp_path / "prefect")}
    proc = subprocess.Popen([sys.executable, "-m", "faceveil.cli", "anonymize", str(src), str(tmp_path / "dest"),
                             "--reversible", "--quiet", "--workers", "2"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    seen: dict[int, tuple[str, bytes]] = {}
    own = b""  # the control: the CLI itself was given the key, and /proc shows it
    try:
        parent = psutil.Process(proc.pid)
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
                    seen[child.pid] = (cmd, data)
            time.sleep(0.05)
        out, err = proc.communicate(timeout=600)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err.decode()[-2000:]
    assert secret.encode() in own
    kinds = {"server": [p for p, (c, _) in seen.items() if "uvicorn" in c],
             "worker": [p for p, (c, _) in seen.items() if "multiprocessing" in c]}
    assert kinds["server"], f"the run's Prefect server was not seen: {[c for c, _ in seen.values()]}"
    assert len(kinds["worker"]) >= 2, f"the run's workers were not seen: {[c for c, _ in seen.values()]}"
    for pid, (cmd, data) in seen.items():
        assert b"FACEVEIL_KEY=" not in data and b"FACEVEIL_PASSPHRASE=" not in data, cmd
        assert secret.encode() not in data and b"not-to-be-inherited" not in data, cmd

