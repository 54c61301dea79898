"""The commands that run or show a job without the key's secret part: anonymize (its key comes
through keyed._master), report, evaluate, sample.
`_anonymize` is over 60 lines: the run and what it prints, each outcome its own message."""

from __future__ import annotations

import json
import sys

from faceveil.cli.exits import EXIT_MEDIA_FAILED, EXIT_OK
from faceveil.cli.keyed import _master


def _config(args):
    """(master key or None, AnonymizeConfig) of an anonymize command line without --config."""
    from faceveil.cli.settings_map import cli_settings
    from faceveil.config import AnonymizeConfig

    values = cli_settings(args, vars(args))
    lock = key = None
    if values["reversible"] or values["method"] == "scramble":
        from faceveil.storage.keys import VaultLock

        from faceveil.cli.keyed import archive_state

        key, kdf = _master(args, archive_state(args, args.dest))
        lock = VaultLock.of(key, kdf)
    return key, AnonymizeConfig.of(**values, vault_lock=lock)


def _validate(config) -> None:
    """Fails fast on settings that name no registered model, or a tls:// scheduler without certificates."""
    from faceveil.flows.dask_cluster import dask_tls_files
    from faceveil.models.anonymizers import ANONYMIZERS
    from faceveil.models.detectors import DETECTORS

    ANONYMIZERS.get(config.masking.method)
    DETECTORS.get(config.detection.detector)
    dask_tls_files(config.cluster.dask_address, *config.cluster.dask_tls)


def _dry_run(config) -> int:
    from faceveil.tasks.discover import discover
    from faceveil.tasks.plan import plan_video

    items, unsupported = discover(config)
    masking = config.masking
    print(
        f"plan: {len(items)} media in {config.src} -> {config.dest} "
        f"(method {masking.method}{', pulse ' + masking.pulse if masking.pulse else ''}, "
        f"detector {config.detection.detector}, {config.cluster.n_workers} workers)"
    )
    for item in items:
        if item.error:
            print(f"  FAILS    {item.rel!r}: {item.error}")
        elif item.done:
            print(f"  done     {item.rel}")
        elif item.kind == "image":
            print(f"  image    {item.rel}")
        else:
            plan = plan_video(config, item)
            if plan.error:
                print(f"  FAILS    {item.rel}: {plan.error}")
            else:
                info = plan.info
                print(
                    f"  video    {item.rel}: {info.n_frames} frames, {info.duration_s:.1f} s, "
                    f"{info.width}x{info.height}, audio {'yes' if info.has_audio else 'no'}, {len(plan.chunks)} chunk(s)"
                )
    for rel, why in unsupported:
        print(f"  skip     {rel}: {why}")
    return EXIT_OK


def _anonymize(args) -> int:
    if args.config:  # the file's settings, the flags given override them
        from faceveil.cli.configured import configured

        key, config = configured(args, getattr(args, "argv", None))
    else:
        key, config = _config(args)
    _validate(config)
    if args.dry_run:
        return _dry_run(config)
    from faceveil import progress
    from faceveil.flows.preflight import nothing_new, prepare_run

    if (
        config.masking.method == "replace" and not args.json
    ):  # what the generated faces may be used for, before anything runs
        from faceveil.models.generators import GENERATORS

        print(
            f"licence: {GENERATORS.get(dict(config.masking.replace_options).get('generator', 'dcgan-digiface')).licence}"
        )
    if not args.quiet:
        progress.use(progress.TqdmProgress())
    run_config, secret = prepare_run(config, key)  # flows/launch.run_anonymize, in two steps:
    summary, found = nothing_new(run_config, secret)  # a rerun with nothing new never imports Prefect or Dask
    if summary is None:
        from faceveil.flows.launch import run_prepared

        summary = run_prepared(run_config, secret, found=found)
    dest, state = config.dest.rstrip("/"), config.state.rstrip("/")
    if args.json:
        print(json.dumps(summary, indent=2))
    elif summary["report"].get("nothing_new"):
        print(
            f"0 new: all {summary['media']} media already done with these settings, "
            f"{summary['seconds']:.1f} s (no cluster started)"
        )
        _print_report(state, summary["report"])
    else:
        done = "processed (faces kept visible)" if config.masking.method == "keep" else "anonymized"
        print(
            f"{summary['ok']} of {summary['media']} media {done}"
            + (f", pulse {config.masking.pulse}" if config.masking.pulse else "")
            + " "
            f"({summary['already_done']} already done, {summary['failed']} failed"
            f"{', of them ' + str(summary['leaked']) + ' withheld by the leak gate' if summary['leaked'] else ''}), "
            f"{summary['faces']} face boxes, {summary['seconds']:.1f} s"
        )
        print(f"outputs:  {dest}/ (anonymized media only: what may be published)")
        print(
            f"private:  {state}/ (summary.json, manifests, vault, index, access log, quarantine, reports: "
            "keep it apart from DEST)"
        )
        _print_report(state, summary["report"])
        if skipped := summary.get("not_media"):
            shown = "; ".join(f"{_shown(s['path'])} ({s['reason']})" for s in skipped[:3])
            print(f"skipped:  {len(skipped)} file(s) that are not media, e.g. {shown}")
    if (gate := summary.get("leak_gate") or {}).get("on") is False:
        print(f"WARNING the leak gate was off: {gate['off_because']}", file=sys.stderr)
    for f in summary["failures"]:
        if f.get("status") == "leaked":
            print(f"WITHHELD {_shown(f['path'])} (in {state}/{f['quarantine']}): {f['reason']}", file=sys.stderr)
        else:
            print(f"FAILED {_shown(f['path'])}: {f['reason']}", file=sys.stderr)
    return EXIT_MEDIA_FAILED if summary["failed"] else EXIT_OK


def _shown(path: str) -> str:
    """A file name as it may be printed: quoted and escaped when it holds control characters."""
    return path if path.isprintable() else repr(path)


def _print_report(state: str, report: dict) -> None:
    if report.get("nothing_new"):
        print(f"report:   {state}/{report['html']}  (MLflow run {report['mlflow']['run_id']})")
        print(
            f"checks:   nothing new since the last run (no cluster started); contracts over the whole archive "
            f"{'passed' if report['contracts'] else 'FAILED'}"
        )
        return
    p, u = report["privacy"], report["utility"]

    def pct(v):
        return "n/a" if v is None or v != v else f"{100 * v:.1f}%"

    print(f"report:   {state}/{report['html']}  (MLflow run {report['mlflow']['run_id']})")
    lk = p["leak"]
    print(
        f"checks:   leak {pct(lk['rate'])} ({lk['faces_found']} unmasked of {lk.get('faces_checked', 0)} faces in "
        f"{lk['frames_checked']} checked frames; below {pct(lk.get('upper_95'))} at 95% confidence), re-identified {pct(p['reid']['rate'])} of "
        f"{p['reid']['faces_checked']} faces, background PSNR {u['background_psnr']:.1f} dB, "
        f"contracts {'passed' if report['contracts'] else 'FAILED'}"
    )


def _report(args) -> int:
    from faceveil.cli.keyed import archive_state
    from faceveil.validation.report import load_report, write_report

    from faceveil.validation.deep_check import report_rows
    from faceveil.validation.review_log import review_actions

    state = archive_state(args, args.dest)
    report = load_report(state, args.run)
    report["review"] = review_actions(state)  # what reviewers did since (faceveil review)
    report["deep_check"] = report_rows(state)  # the latest deep check of published media (faceveil check)
    paths = write_report(state, report, latest=args.run is None)
    print(state.display(paths["html"]))
    return EXIT_OK


def _migrate_state(args) -> int:
    from faceveil.storage.state import default_state_url, migrate

    state = args.state or default_state_url(args.dest)
    moved = migrate(args.dest, state)
    print(moved or f"nothing to move: {args.dest.rstrip('/')} holds no _faceveil/ folder (its state root: {state})")
    return EXIT_OK


def _evaluate(args) -> int:
    import tempfile

    from faceveil.flows.evaluate import run_evaluate
    from faceveil.validation.evaluation_table import format_table

    out = args.out or tempfile.mkdtemp(prefix="faceveil-evaluate-")
    result = run_evaluate(
        args.data,
        out,
        [m.strip() for m in args.methods.split(",") if m.strip()],
        workers=args.workers,
        check_every_s=args.check_every,
        tracking_uri=args.mlflow_uri,
        threshold=args.id_threshold,
    )
    print(json.dumps(result, indent=2, default=str) if args.json else format_table(result))
    return EXIT_OK


def _sample(args) -> int:
    from faceveil.sample import make_sample_archive

    for p in make_sample_archive(args.dest):
        print(p)
    return EXIT_OK
