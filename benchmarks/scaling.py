"""Archive throughput against the number of Dask worker processes, and the cost of a rerun.

The archive: the 18 shared clips of ../shared/data/video (MOT20 excluded: its night crowd dominates
alone), each a media of its own, as a camera archive is. Runs `faceveil anonymize` (the CLI: Prefect
flow, local Dask cluster, checks on) with 1 and with 2 worker processes on fresh destinations, then
once more over the 2-worker destination unchanged. Prints frames per second, the 2/1 ratio, the
fixed start-up cost (CLI wall time minus the flow's own time), and a model for N workers fitted to the
two runs:

    T(n) = start + serial + F / (n * r)

with F the archive's frames, r the per-worker rate and `serial` the work no worker shares (the
summary, contracts, report, MLflow); two runs give r and serial. For machines of c cores each
running c / threads workers, n = machines * c / threads. Measured on this machine's 2 cores, so the
2-worker run also shows what sharing cores costs; across machines the per-worker rate holds while
the scheduler's per-task overhead stays small (a few ms per task, ~10 tasks per media).

    .venv/bin/python benchmarks/scaling.py [--clips N]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import shared_data

BIN = Path(sys.executable).parent


def build_archive(dst: Path, clips: int | None) -> int:
    """Copies the shared clips into dst/camN/ (a few cameras); returns the frame count."""
    from faceveil.storage.media import probe_video

    videos = sorted(p for p in (shared_data() / "video").glob("*.mp4") if "MOT20" not in p.name)[:clips]
    frames = 0
    for i, v in enumerate(videos):
        (dst / f"cam{i % 3}").mkdir(parents=True, exist_ok=True)
        shutil.copy(v, dst / f"cam{i % 3}" / v.name)
        frames += probe_video(str(v)).n_frames
    return frames


def run(src: Path, dest: Path, workers: int) -> dict:
    t0 = time.perf_counter()
    r = subprocess.run([str(BIN / "faceveil"), "anonymize", str(src), str(dest), "--workers", str(workers),
                        "--json", "--quiet"], capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if r.returncode not in (0, 1):
        sys.exit(f"faceveil failed ({r.returncode}): {r.stderr[-2000:]}")
    summary = json.loads(r.stdout[r.stdout.index("{"):])
    return {"wall": wall, "flow": float(summary["seconds"]), "ok": summary["ok"], "done": summary["already_done"],
            "failed": summary["failed"], "frames": summary["frames"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=None, help="use the first N clips (default: all 18)")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="faceveil-scaling-"))
    try:
        src = work / "archive"
        frames = build_archive(src, args.clips)
        n_media = sum(1 for _ in src.rglob("*.mp4"))
        print(f"{os.cpu_count()} CPU cores; archive: {n_media} clips, {frames} frames")
        one = run(src, work / "out1", 1)
        two = run(src, work / "out2", 2)
        again = run(src, work / "out2", 2)
        for name, r in (("1 worker", one), ("2 workers", two)):
            print(f"{name:10} wall {r['wall']:7.1f} s   flow {r['flow']:7.1f} s   {frames / r['wall']:6.1f} fps "
                  f"(flow only {frames / r['flow']:6.1f} fps)   ok {r['ok']}, failed {r['failed']}")
        print(f"2/1 workers: {one['wall'] / two['wall']:.2f}x wall, {one['flow'] / two['flow']:.2f}x flow only")
        print(f"rerun over the unchanged archive: {again['wall']:.1f} s wall ({again['done']} already done, "
              f"{again['ok']} redone) = {100 * again['wall'] / two['wall']:.1f}% of the first 2-worker run")
        start = (one["wall"] - one["flow"] + two["wall"] - two["flow"]) / 2
        per_worker = frames / (2 * max(one["flow"] - two["flow"], 1e-9))  # F / r = 2 (T1 - T2)
        serial = max(one["flow"] - frames / per_worker, 0.0)
        print(f"\nmodel T(n) = start {start:.1f} s + serial {serial:.1f} s + F / (n x {per_worker:.1f} fps per worker)")
        for n in (1, 2, 4, 8, 16, 32):
            t = start + serial + frames / (n * per_worker)
            print(f"  {n:3d} workers: {t:7.1f} s for this archive ({frames / t:7.1f} fps); "
                  f"an hour of 30 fps video: {(start + serial + 108000 / (n * per_worker)) / 60:6.1f} min")
        print("(2 workers here share 2 cores with the scheduler and the flow: the per-worker rate is a floor "
              "for machines with a core per worker)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
