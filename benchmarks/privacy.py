"""Privacy and utility of each anonymization method on ../shared/data, with the real flow per method
(`faceveil.flows.evaluate.run_evaluate`): one table for the labelled photos (faces/: leak, the run's
re-identification check, an attacker's gallery search of the original photos and its "parrot"
variant, background/face SSIM, speed) and one for the videos (video/, no labels: no attack column).
Prints both tables and the MLflow run ids (store under OUT/<set>/mlflow).

    .venv/bin/python benchmarks/privacy.py [--methods solid,blur,mosaic,scramble] [--out DIR] [--videos a.mp4,b.mp4]
                                           [--only faces|videos] [--workers N]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from common import shared_data


def video_set(names: str | None, work: Path) -> tuple[Path, list[str]]:
    """The folder of clips to evaluate: video/ itself for all of them, else the named clips copied into
    a temp folder (the flow's discovery does not follow symlinks)."""
    folder = shared_data() / "video"
    clips = sorted(p.name for p in folder.glob("*.mp4"))
    if not names:
        return folder, clips
    chosen = [n.strip() for n in names.split(",") if n.strip()]
    missing = [n for n in chosen if n not in clips]
    if missing:
        sys.exit(f"not in {folder}: {', '.join(missing)}")
    subset = work / "video"
    subset.mkdir(parents=True)
    for n in chosen:
        shutil.copy(folder / n, subset / n)
    return subset, chosen


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--methods", default="solid,blur,mosaic,scramble", help="comma-separated (default: all four)")
    ap.add_argument("--out", default=None, help="where the outputs go (default: a new temp folder, kept)")
    ap.add_argument("--videos", default=None, help="comma-separated clip names from video/ (default: all 19)")
    ap.add_argument("--workers", type=int, default=None, help="local Dask workers (default: one per core)")
    ap.add_argument("--only", choices=["faces", "videos"], default=None, help="run one of the two sets")
    ap.add_argument("--check-every", type=float, default=0.5, help="seconds of video between checked frames")
    args = ap.parse_args()
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    work = Path(tempfile.mkdtemp(prefix="faceveil-privacy-work-"))
    os.environ.setdefault("PREFECT_HOME", str(work / "prefect"))
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    import contextlib
    import importlib
    import logging

    noisy = "great_expectations.data_context.types.base"  # the flow's data contracts: sets itself to INFO on import
    with contextlib.suppress(ImportError):
        importlib.import_module(noisy)
        logging.getLogger(noisy).setLevel(logging.WARNING)
    from faceveil.flows.evaluate import check_methods, run_evaluate
    from faceveil.validation.evaluation_table import format_table

    t_all = time.perf_counter()
    try:
        methods = check_methods(methods)
        videos, clips = video_set(args.videos, work)
        out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="faceveil-privacy-"))
        print(f"methods: {', '.join(methods)}; {os.cpu_count()} CPU cores; outputs under {out}")
        print(f"videos: {'all ' if not args.videos else ''}{len(clips)} clips: {', '.join(clips)}")
        for name, title, data in (("faces", "labelled photos", shared_data() / "faces"), ("videos", "videos", videos)):
            if args.only and name != args.only:
                continue
            t0 = time.perf_counter()
            result = run_evaluate(
                str(data), str(out / name), methods, workers=args.workers, check_every_s=args.check_every
            )
            print(f"\n== {title}: {data} ({time.perf_counter() - t0:.0f} s) ==")
            print(format_table(result))
            print(
                "MLflow ("
                + result["mlflow"]["tracking_uri"]
                + "): "
                + ", ".join(f"{m} {f['mlflow_run_id']}" for m, f in result["methods"].items())
            )
            failed = {m: f["failures"] for m, f in result["methods"].items() if f["failed"]}
            if failed:
                print(f"FAILED media: {failed}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"\ntotal wall time: {time.perf_counter() - t_all:.0f} s")


if __name__ == "__main__":  # the local Dask cluster's worker processes import this module again
    main()
