"""Restores again and again, as an operator would: 20 `restore --probe` runs and 5 `restore --all`
runs of one reversible archive (built-in sample photos, its own key), each a fresh CLI process with its
own Prefect server and Dask cluster. Prints every exit status, the access-log rows the runs left
(intent + outcome per run), and `access-log --verify` on the whole log.

    .venv/bin/python benchmarks/restore_repeat.py [--probes 20] [--alls 5]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = Path(sys.executable).parent


def cli(*args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "faceveil"), *args], capture_output=True, text=True, env=env, timeout=900)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--probes", type=int, default=20)
    ap.add_argument("--alls", type=int, default=5)
    args = ap.parse_args()
    from faceveil.sample import make_sample_archive
    from faceveil.storage import access_log
    from faceveil.storage.paths import Location

    work = Path(tempfile.mkdtemp(prefix="faceveil-restore-repeat-"))
    try:
        env = {
            **os.environ,
            "PREFECT_HOME": str(work / "prefect"),
            "FACEVEIL_HOME": str(work / "home"),
            "PREFECT_LOGGING_LEVEL": "WARNING",
        }
        sample = work / "sample"
        make_sample_archive(sample, seconds=1.0, fps=10, size=(320, 180))
        src = work / "src"
        (src / "photos").mkdir(parents=True)
        for p in sorted((sample / "photos").iterdir()):
            shutil.copy(p, src / "photos" / p.name)
        probe = src / "photos" / "grace_hopper.png"
        key = work / "archive.key"
        assert cli("keygen", str(key), env=env).returncode == 0
        r = cli("anonymize", str(src), str(work / "archive"), "--reversible", "--key", str(key), "--quiet", env=env)
        print(f"anonymize --reversible: exit {r.returncode}")
        if r.returncode != 0:
            print(r.stderr[-2000:])
            return
        before = len(access_log.read(Location(str(work / "archive"))))
        codes = {"probe": [], "all": []}
        t0 = time.perf_counter()
        for i in range(args.probes):
            r = cli(
                "restore",
                str(work / "archive"),
                str(work / f"probe{i}"),
                "--probe",
                str(probe),
                "--reason",
                f"repeat {i}",
                "--key",
                str(key),
                env=env,
            )
            codes["probe"].append(r.returncode)
            if r.returncode != 0:
                print(f"restore --probe #{i}: exit {r.returncode}; stderr ends:\n{r.stderr[-1500:]}")
        probe_rows = len(access_log.read(Location(str(work / "archive")))) - before
        for i in range(args.alls):
            r = cli("restore", str(work / "archive"), str(work / f"all{i}"), "--all", "--key", str(key), env=env)
            codes["all"].append(r.returncode)
            if r.returncode != 0:
                print(f"restore --all #{i}: exit {r.returncode}; stderr ends:\n{r.stderr[-1500:]}")
        wall = time.perf_counter() - t0
        v = cli("access-log", str(work / "archive"), "--verify", "--key", str(key), env=env)
        rows = access_log.read(Location(str(work / "archive")))
        print(f"restore --probe x{args.probes}: exit codes {codes['probe']}")
        print(f"restore --all   x{args.alls}: exit codes {codes['all']}")
        print(
            f"access-log rows left by the probe runs: {probe_rows} (expected {2 * args.probes}); "
            f"all rows now {len(rows)}"
        )
        print(
            f"access-log --verify: exit {v.returncode}: {v.stdout.strip().splitlines()[-1] if v.stdout.strip() else v.stderr.strip()[-300:]}"
        )
        print(f"{args.probes + args.alls} restores in {wall:.0f} s")
        ok = all(c == 0 for c in codes["probe"] + codes["all"]) and probe_rows == 2 * args.probes and v.returncode == 0
        print("PASS" if ok else "FAIL")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
