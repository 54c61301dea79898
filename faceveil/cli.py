"""The `faceveil` command: one subcommand per job."""
from __future__ import annotations

import argparse
import json
import os
import sys

EXIT_OK, EXIT_MEDIA_FAILED, EXIT_USAGE = 0, 1, 2


def _add_anonymize(sub) -> None:
    p = sub.add_parser("anonymize", help="anonymize every face of an archive (folder or s3://)")
    p.add_argument("src", help="source folder or s3://bucket/prefix")
    p.add_argument("dest", help="destination folder or s3://bucket/prefix")
    p.add_argument("--method", default="mosaic", help="solid | blur | mosaic (default: mosaic)")
    p.add_argument("--detector", default="centerface", help="centerface | dlib-hog (default: centerface)")
    p.add_argument("--threshold", type=float, default=None, help="detector score threshold (default: the detector's)")
    p.add_argument("--min-size", type=float, default=0.0, help="ignore faces smaller than this many pixels")
    p.add_argument("--scale", type=float, default=1.0, help="detector inference scale (0.5 = half resolution)")
    p.add_argument("--detect-fps", type=float, default=7.5, help="least video frames per second the detector looks at; the tracker covers the rest (default: 7.5)")
    p.add_argument("--detect-mpx-per-s", type=float, default=6.0, help="detector budget: every frame is looked at while this costs at most N megapixels per second of video (default: 6)")
    p.add_argument("--detect-every", type=int, default=None, help="run the detector on every N-th video frame instead")
    p.add_argument("--no-track", dest="track", action="store_false", help="no tracking: detect on every frame, no gap filling")
    p.add_argument("--mask", dest="mask_shape", default="box", choices=["box", "ellipse"])
    p.add_argument("--pad", type=float, default=0.4, help="mask margin as a fraction of face size")
    p.add_argument("--max-gap", type=int, default=10, help="frames a face may be missed inside a track and still be covered")
    p.add_argument("--lossless", action="store_true", help="lossless output (FFV1 in MKV for video, lossless images)")
    p.add_argument("--crf", type=int, default=18, help="x264 quality (lower is better)")
    p.add_argument("--preset", default="veryfast", help="x264 preset")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--workers", type=int, default=None, help="local Dask workers (default: one per core)")
    g.add_argument("--dask-address", default=None, help="an existing Dask scheduler, e.g. tcp://host:8786")
    p.add_argument("--dry-run", action="store_true", help="print the plan and exit")
    p.add_argument("--json", action="store_true", help="print the run summary as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--verbose", action="store_true", help="show Prefect and Dask logs")


def _add_sample(sub) -> None:
    p = sub.add_parser("sample", help="write the built-in sample archive (videos with audio, photos)")
    p.add_argument("dest")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="faceveil", description="Anonymize faces in video archives and face datasets.")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_anonymize(sub)
    _add_sample(sub)
    return parser


def _config(args):
    from faceveil.config import AnonymizeConfig

    return AnonymizeConfig(
        src=args.src, dest=args.dest, method=args.method, detector=args.detector, threshold=args.threshold,
        min_size=args.min_size, scale=args.scale, detect_every=args.detect_every, detect_fps=args.detect_fps,
        detect_mpx_per_s=args.detect_mpx_per_s, track=args.track,
        mask_shape=args.mask_shape, pad=args.pad, max_gap=args.max_gap, lossless=args.lossless, crf=args.crf,
        preset=args.preset, workers=args.workers, dask_address=args.dask_address)


def _validate(config) -> None:
    """Fails fast on settings that name no registered model."""
    from faceveil.models.anonymizers import ANONYMIZERS
    from faceveil.models.detectors import DETECTORS

    ANONYMIZERS.get(config.method)
    DETECTORS.get(config.detector)


def _dry_run(config) -> int:
    from faceveil.tasks.discover import discover
    from faceveil.tasks.video import plan_video

    items, unsupported = discover(config)
    print(f"plan: {len(items)} media in {config.src} -> {config.dest} "
          f"(method {config.method}, detector {config.detector}, {config.n_workers} workers)")
    for item in items:
        if item.done:
            print(f"  done     {item.rel}")
        elif item.kind == "image":
            print(f"  image    {item.rel}")
        else:
            plan = plan_video(config, item)
            if plan.error:
                print(f"  FAILS    {item.rel}: {plan.error}")
            else:
                info = plan.info
                print(f"  video    {item.rel}: {info.n_frames} frames, {info.duration_s:.1f} s, "
                      f"{info.width}x{info.height}, audio {'yes' if info.has_audio else 'no'}, {len(plan.chunks)} chunk(s)")
    for rel, why in unsupported:
        print(f"  skip     {rel}: {why}")
    return EXIT_OK


def _anonymize(args) -> int:
    config = _config(args)
    _validate(config)
    if args.dry_run:
        return _dry_run(config)
    from faceveil import progress
    from faceveil.flows.anonymize import run_anonymize

    if not args.quiet:
        progress.use(progress.TqdmProgress())
    summary = run_anonymize(config)
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        dest = config.dest.rstrip("/")
        print(f"{summary['ok']} of {summary['media']} media anonymized "
              f"({summary['already_done']} already done, {summary['failed']} failed), "
              f"{summary['faces']} face boxes, {summary['seconds']:.1f} s")
        print(f"outputs:  {dest}/")
        print(f"summary:  {dest}/_faceveil/summary.json")
        print(f"manifests: {dest}/_faceveil/{{runs,media,detections,tracks}}/")
    for f in summary["failures"]:
        print(f"FAILED {f['path']}: {f['reason']}", file=sys.stderr)
    return EXIT_MEDIA_FAILED if summary["failed"] else EXIT_OK


def _sample(args) -> int:
    from faceveil.sample import make_sample_archive

    for p in make_sample_archive(args.dest):
        print(p)
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not getattr(args, "verbose", False):
        os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
        os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "error")
    from faceveil.flows.runtime import set_offline_env

    set_offline_env()
    handlers = {"anonymize": _anonymize, "sample": _sample}
    try:
        return handlers[args.command](args)
    except (FileNotFoundError, NotADirectoryError, ValueError, PermissionError) as e:
        print(f"faceveil: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("faceveil: interrupted; re-run the same command to finish (finished media are kept)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
