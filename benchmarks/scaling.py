"""Archive throughput against the number of Dask worker processes, and the cost of a rerun.

The archive: the 18 shared clips of ../shared/data/video (MOT20 excluded: its night crowd dominates
alone), each a media of its own, as a camera archive is. Runs `faceveil anonymize` (the CLI: Prefect
flow, local Dask cluster, checks on) with 1 and with 2 worker processes on fresh destinations, then
once more over the 2-worker destination unchanged. Prints frames per second, the 2/1 ratio, the
fixed start-up cost (CLI wall time minus the flow's own time), and a model for more machines:

    T = start + F / (cores * r)

with F the archive's frames and r the measured frames per second per core of the 2-worker run (its
serial parts included, so a floor for bigger clusters; the scheduler's per-task overhead, a few ms
per task and ~10 tasks per media, is left out). One worker already uses every core here (detector
threads = cores / workers), so the 2/1 ratio compares processes with threads on the same cores.

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
    r = subprocess.run(
        [str(BIN / "faceveil"), "anonymize", str(src), str(dest), "--workers", str(workers), "--json", "--quiet"],
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - t0
    if r.returncode not in (0, 1):
        sys.exit(f"faceveil failed ({r.returncode}): {r.stderr[-2000:]}")
    summary = json.loads(r.stdout[r.stdout.index("{") :])
    return {
        "wall": wall,
        "flow": float(summary["seconds"]),
        "ok": summary["ok"],
        "done": summary["already_done"],
        "failed": summary["failed"],
        "frames": summary["frames"],
    }


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
            print(
                f"{name:10} wall {r['wall']:7.1f} s   flow {r['flow']:7.1f} s   {frames / r['wall']:6.1f} fps "
                f"(flow only {frames / r['flow']:6.1f} fps)   ok {r['ok']}, failed {r['failed']}"
            )
        print(f"2/1 workers: {one['wall'] / two['wall']:.2f}x wall, {one['flow'] / two['flow']:.2f}x flow only")
        print(
            f"rerun over the unchanged archive: {again['wall']:.1f} s wall ({again['done']} already done, "
            f"{again['ok']} redone) = {100 * again['wall'] / two['wall']:.1f}% of the first 2-worker run"
        )
        start = (one["wall"] - one["flow"] + two["wall"] - two["flow"]) / 2
        cores = os.cpu_count() or 1
        per_core = frames / (cores * two["flow"])  # the whole flow's time, its serial parts included
        print(
            f"\nhere one worker already runs its detector on every core (threads = cores / workers), so 2/1 "
            f"measures processes against threads on the same {cores} cores, not more machines"
        )
        print(
            f"model: T = start {start:.1f} s + F / (cores x {per_core:.1f} fps per core), from the 2-worker run "
            f"(serial parts - tracking a video, contracts, report - inside; Dask's per-task overhead, a few ms "
            f"for ~10 tasks per media, left out)"
        )
        for machines, c in ((1, cores), (4, 8), (16, 8), (64, 8)):
            t = start + 108000 / (machines * c * per_core)
            print(f"  {machines:3d} machine(s) x {c} cores: an hour of 30 fps video in {t / 60:6.1f} min")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
