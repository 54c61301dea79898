"""`faceveil anonymize` on one photo, as a user runs it (its own Prefect server): the run's tasks run in
its own process (flows/preflight.in_this_process), so no Dask worker process is ever started, and the photo
is anonymized, checked and reported like any other. The same command on two photos starts its cluster."""

import json
import os
import shutil
import subprocess
import sys
import time

import psutil
import pytest

pytestmark = pytest.mark.slow  # the CLI with its own Prefect server


def _run(src, dest, tmp_path) -> tuple[dict, set[str]]:
    """The CLI's --json summary, and what each process it started was (its children's command lines)."""
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}  # the CLI starts its own server
    env["PREFECT_HOME"] = os.environ["PREFECT_HOME"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "faceveil.cli", "anonymize", str(src), str(dest), "--json", "--quiet"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    kinds, parent = set(), psutil.Process(proc.pid)
    while proc.poll() is None:
        try:
            for child in parent.children(recursive=True):
                line = " ".join(child.cmdline())
                kinds.add("prefect server" if "uvicorn" in line else "worker" if "spawn_main" in line else line)
        except psutil.Error:  # a child that ended between the listing and the reading
            pass
        time.sleep(0.05)
    out, err = proc.communicate()
    assert proc.returncode == 0, err[-3000:]
    return json.loads(out), kinds


def test_one_photo_runs_without_a_cluster_two_with_one(sample_archive, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    shutil.copy2(sample_archive / "photos/astronaut.jpg", src / "a.jpg")
    summary, kinds = _run(src, tmp_path / "dest", tmp_path)
    assert summary["ok"] == 1 and summary["failed"] == 0 and summary["report"]["contracts"] is True
    assert (tmp_path / "dest" / "a.jpg").exists() and summary["faces"] >= 1
    assert "prefect server" in kinds and "worker" not in kinds, kinds  # the control below sees workers

    shutil.copy2(sample_archive / "photos/astronaut.jpg", src / "b.jpg")
    summary, kinds = _run(src, tmp_path / "dest2", tmp_path)
    assert summary["ok"] == 2 and "worker" in kinds, kinds
