"""The `faceveil` command: one subcommand per job.

Over 300 lines: every subcommand's parser and handler live here, one short function each."""
from __future__ import annotations

import argparse
import json
import os
import sys

EXIT_OK, EXIT_MEDIA_FAILED, EXIT_USAGE, EXIT_CONTRACT = 0, 1, 2, 3


def _add_anonymize(sub) -> None:
    p = sub.add_parser("anonymize", help="anonymize every face of an archive (folder or s3://)")
    p.add_argument("src", help="source folder or s3://bucket/prefix")
    p.add_argument("dest", help="destination folder or s3://bucket/prefix")
    p.add_argument("--method", default="mosaic", help="solid | blur | mosaic | scramble (keyed, needs --key) (default: mosaic)")
    p.add_argument("--reversible", action="store_true", help="seal every original face region in DEST/_faceveil/vault/ and index each track's identity (needs a key)")
    p.add_argument("--no-index", action="store_true", help="with --reversible: no identity index")
    _add_key_args(p)
    p.add_argument("--detector", default="centerface", help="centerface | dlib-hog (default: centerface)")
    p.add_argument("--threshold", type=float, default=None, help="detector score threshold (default: the detector's)")
    p.add_argument("--precision", default="fp32", choices=["fp32", "int8"],
                   help="centerface's model: fp32 (as shipped) or int8 (derived from it: half the CPU time, the same "
                        "recall on daylight photos, but it misses about half the faces fp32 finds in night footage)")
    p.add_argument("--min-size", type=float, default=0.0, help="ignore faces smaller than this many pixels")
    p.add_argument("--scale", type=float, default=1.0, help="detector inference scale (0.5 = half resolution)")
    p.add_argument("--detect-fps", type=float, default=7.5, help="least video frames per second the detector looks at; the tracker covers the rest (default: 7.5)")
    p.add_argument("--detect-mpx-per-s", type=float, default=6.0, help="detector budget: every frame is looked at while this costs at most N megapixels per second of video (default: 6)")
    p.add_argument("--detect-every", type=int, default=None, help="run the detector on every N-th video frame instead")
    p.add_argument("--second-look", type=float, default=0.5, metavar="SCALE",
                   help="look again at each anonymized frame with faces, at this detector scale, and mask what is found then (0 = off; default 0.5)")
    p.add_argument("--no-track", dest="track", action="store_false", help="no tracking: detect on every frame, no gap filling")
    p.add_argument("--mask", dest="mask_shape", default="box", choices=["box", "ellipse"])
    p.add_argument("--pad", type=float, default=0.4, help="mask margin as a fraction of face size")
    p.add_argument("--max-gap", type=int, default=10, help="frames a face may be missed inside a track and still be covered")
    p.add_argument("--lossless", action="store_true", help="lossless output (FFV1 in MKV for video, lossless images)")
    p.add_argument("--crf", type=int, default=18, help="x264 quality (lower is better)")
    p.add_argument("--preset", default="veryfast", help="x264 preset")
    _add_cluster_args(p)
    _add_audit_args(p)
    _add_gate_args(p)
    p.add_argument("--dry-run", action="store_true", help="print the plan and exit")
    p.add_argument("--json", action="store_true", help="print the run summary as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--verbose", action="store_true", help="show Prefect and Dask logs")


def _add_key_args(p) -> None:
    p.add_argument("--key", default=None, help="key file (from `faceveil keygen`); default: $FACEVEIL_KEY")
    p.add_argument("--passphrase", action="store_true",
                   help="derive the key from a passphrase (Argon2id): $FACEVEIL_PASSPHRASE, else asked for")


def _add_cluster_args(p) -> None:
    g = p.add_mutually_exclusive_group()
    g.add_argument("--workers", type=int, default=None, help="local Dask workers (default: one per core)")
    g.add_argument("--dask-address", default=None, help="an existing Dask scheduler, e.g. tls://host:8786 (restore refuses a plain tcp:// one: it sends data keys)")


def _add_audit_args(p) -> None:
    p.add_argument("--audit-every", type=float, default=4.0, metavar="SECONDS",
                   help="check one output frame per this many seconds of video (at most 30 per video) for leaks, "
                        "re-identification and quality (default 4; each check costs ~0.5 s of CPU at 720p; 0 = no "
                        "checks, and the data contract then does not ask for them)")
    p.add_argument("--mlflow-uri", default=None,
                   help="MLflow tracking URI (default: $FACEVEIL_MLFLOW_URI, else sqlite under DEST/_faceveil/mlflow)")


def _add_gate_args(p) -> None:
    p.add_argument("--max-leak", type=float, default=0.0, metavar="PERCENT",
                   help="the leak gate withholds a media when its checked frames show more unmasked faces than this "
                        "share of their faces (default 0: any unmasked face); withheld outputs go to "
                        "DEST/_faceveil/quarantine/, never the public tree, and the run exits 1")
    p.add_argument("--no-recheck", dest="recheck", action="store_false",
                   help="withhold a media that leaked at once (default: anonymize it once more with the detector on "
                        "every frame at twice the scale, and check again)")


def _add_report(sub) -> None:
    p = sub.add_parser("report", help="render a run's audit report (HTML) again from its stored audit JSON")
    p.add_argument("dest", help="an anonymized archive (folder or s3://)")
    p.add_argument("--run", default=None, help="run id (default: the latest run)")
    p = sub.add_parser("evaluate", help="compare anonymization methods on labelled data (folders of photos per person, videos)")
    p.add_argument("data", help="folder: faces/<person>/*.jpg and/or videos")
    p.add_argument("--methods", default="solid,blur,mosaic,scramble", help="comma-separated (default: solid,blur,mosaic,scramble)")
    p.add_argument("--out", default=None, help="where the anonymized copies go (default: a temporary folder)")
    p.add_argument("--id-threshold", type=float, default=None, metavar="COSINE",
                   help="identity match threshold (default: calibrated on the labelled photos, else the embedder's)")
    p.add_argument("--threshold", dest="id_threshold", type=_deprecated_threshold, help=argparse.SUPPRESS)
    p.add_argument("--audit-every", type=float, default=0.5, metavar="SECONDS", help="checked video frames (default 0.5 s)")
    p.add_argument("--mlflow-uri", default=None, help="MLflow tracking URI (default: sqlite under OUT/_faceveil/mlflow)")
    p.add_argument("--workers", type=int, default=None)
    p.add_argument("--json", action="store_true")


def _deprecated_threshold(text: str) -> float:
    """`evaluate --threshold`: the old name of --id-threshold, kept (hidden, with a warning) for one release."""
    print("faceveil evaluate: --threshold is deprecated, use --id-threshold", file=sys.stderr)
    return float(text)


def _add_keys(sub) -> None:
    p = sub.add_parser("keygen", help="write a new master key file (0600)")
    p.add_argument("path")
    p = sub.add_parser("restore", help="restore chosen faces of a reversible archive from its vault (needs the key)")
    p.add_argument("archive", help="an archive anonymized with --reversible (folder or s3://)")
    p.add_argument("out", help="where restored media go (same tree)")
    p.add_argument("--track", action="append", default=[], metavar="MEDIA:TRACK",
                   help="a track to restore (MEDIA: media id or relative path); repeatable")
    p.add_argument("--media", action="append", default=[], metavar="PATH", help="restore every face of this media")
    p.add_argument("--all", action="store_true", help="restore every face of the archive")
    p.add_argument("--probe", default=None, metavar="PHOTO", help="restore the tracks that match this person's photo")
    p.add_argument("--face", type=int, default=None, help="with several faces in the probe photo: which (0 = largest)")
    p.add_argument("--reason", default=None, help="why (recorded in the access log; required with --probe)")
    p.add_argument("--json", action="store_true", help="print the restore report as JSON")
    _add_key_args(p)
    _add_cluster_args(p)
    p = sub.add_parser("search", help="find a person's tracks across the archive by one photo (needs the key)")
    p.add_argument("archive")
    p.add_argument("--probe", required=True, metavar="PHOTO")
    p.add_argument("--reason", required=True, help="why (recorded in the access log)")
    p.add_argument("--top", type=int, default=10)
    p.add_argument("--thumbnails", default=None, metavar="DIR", help="write each match's anonymized thumbnail here")
    p.add_argument("--face", type=int, default=None, help="with several faces in the photo: which (0 = largest)")
    p.add_argument("--json", action="store_true")
    _add_key_args(p)
    p = sub.add_parser("calibrate", help="set the index's match threshold from labelled photos (a folder per person)")
    p.add_argument("archive")
    p.add_argument("--labelled", required=True, metavar="DIR")
    p.add_argument("--target-fmr", type=float, default=0.01, help="false-match rate to allow (default 0.01)")
    _add_key_args(p)
    p = sub.add_parser("audit-log", help="show or verify the archive's access log (needs the key to verify)")
    p.add_argument("archive")
    p.add_argument("--verify", action="store_true")
    p.add_argument("--tail", type=int, default=20)
    _add_key_args(p)
    p = sub.add_parser("rotate-key", help="move the vault and identity index to a new master key (needs both keys)")
    p.add_argument("archive")
    p.add_argument("--new-key", required=True, help="the new key file (from `faceveil keygen`)")
    p.add_argument("--reason", default="key rotation", help="why (recorded in the access log)")
    _add_key_args(p)
    p = sub.add_parser("forget", help="crypto-shred tracks: their originals become unrecoverable (needs the key)")
    p.add_argument("archive")
    p.add_argument("--track", action="append", required=True, metavar="MEDIA:TRACK")
    p.add_argument("--reason", required=True, help="why (recorded in the access log)")
    _add_key_args(p)


def _add_sample(sub) -> None:
    p = sub.add_parser("sample", help="write the built-in sample archive (videos with audio, photos)")
    p.add_argument("dest")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="faceveil", description="Anonymize faces in video archives and face datasets.")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_anonymize(sub)
    _add_keys(sub)
    _add_sample(sub)
    _add_report(sub)
    return parser


def _master(args, archive: str):
    """The master key from --key / $FACEVEIL_KEY, or --passphrase with the archive's KDF (Argon2id
    parameters and salt, kept in its vault's keyinfo)."""
    from faceveil.storage.keys import MasterKey, load_key

    if args.passphrase:
        import getpass

        from faceveil.storage.paths import Location
        from faceveil.storage.vault import passphrase_kdf

        phrase = os.environ.get("FACEVEIL_PASSPHRASE") or getpass.getpass("faceveil passphrase: ")
        kdf = passphrase_kdf(Location(archive))
        return MasterKey.from_passphrase(phrase, kdf), kdf
    return load_key(args.key), None


def _config(args):
    from faceveil.config import AnonymizeConfig

    lock = key = None
    if args.reversible or args.method == "scramble":
        from faceveil.storage.keys import VaultLock

        key, kdf = _master(args, args.dest)
        lock = VaultLock.of(key, kdf)
    return key, AnonymizeConfig(reversible=args.reversible, vault_lock=lock, index=False if args.no_index else None,
        src=args.src, dest=args.dest, method=args.method, detector=args.detector, threshold=args.threshold,
        min_size=args.min_size, scale=args.scale, precision=args.precision, detect_every=args.detect_every, detect_fps=args.detect_fps,
        detect_mpx_per_s=args.detect_mpx_per_s, track=args.track, second_look=args.second_look,
        mask_shape=args.mask_shape, pad=args.pad, max_gap=args.max_gap, lossless=args.lossless, crf=args.crf,
        preset=args.preset, workers=args.workers, dask_address=args.dask_address, audit_every_s=args.audit_every,
        tracking_uri=args.mlflow_uri, max_leak=args.max_leak / 100, recheck=args.recheck)


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
                print(f"  video    {item.rel}: {info.n_frames} frames, {info.duration_s:.1f} s, "
                      f"{info.width}x{info.height}, audio {'yes' if info.has_audio else 'no'}, {len(plan.chunks)} chunk(s)")
    for rel, why in unsupported:
        print(f"  skip     {rel}: {why}")
    return EXIT_OK


def _anonymize(args) -> int:
    key, config = _config(args)
    _validate(config)
    if args.dry_run:
        return _dry_run(config)
    from faceveil import progress
    from faceveil.flows.anonymize import run_anonymize

    if not args.quiet:
        progress.use(progress.TqdmProgress())
    summary = run_anonymize(config, key)
    dest = config.dest.rstrip("/")
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(f"{summary['ok']} of {summary['media']} media anonymized "
              f"({summary['already_done']} already done, {summary['failed']} failed"
              f"{', of them ' + str(summary['leaked']) + ' withheld by the leak gate' if summary['leaked'] else ''}), "
              f"{summary['faces']} face boxes, {summary['seconds']:.1f} s")
        print(f"outputs:  {dest}/")
        print(f"summary:  {dest}/_faceveil/summary.json")
        print(f"manifests: {dest}/_faceveil/{{runs,media,detections,tracks,audit}}/")
        _print_audit(dest, summary["audit"])
        if skipped := summary.get("not_media"):
            shown = "; ".join(f"{_shown(s['path'])} ({s['reason']})" for s in skipped[:3])
            print(f"skipped:  {len(skipped)} file(s) that are not media, e.g. {shown}")
    for f in summary["failures"]:
        if f.get("status") == "leaked":
            print(f"WITHHELD {_shown(f['path'])} (in {dest}/{f['quarantine']}): {f['reason']}", file=sys.stderr)
        else:
            print(f"FAILED {_shown(f['path'])}: {f['reason']}", file=sys.stderr)
    return EXIT_MEDIA_FAILED if summary["failed"] else EXIT_OK


def _shown(path: str) -> str:
    """A file name as it may be printed: quoted and escaped when it holds control characters."""
    return path if path.isprintable() else repr(path)


def _print_audit(dest: str, audit: dict) -> None:
    p, u = audit["privacy"], audit["utility"]

    def pct(v):
        return "n/a" if v is None or v != v else f"{100 * v:.1f}%"
    print(f"report:   {dest}/{audit['report']}  (MLflow run {audit['mlflow']['run_id']})")
    print(f"checks:   leak {pct(p['leak']['rate'])} ({p['leak']['faces_found']} faces found in "
          f"{p['leak']['frames_checked']} checked frames), re-identified {pct(p['reid']['rate'])} of "
          f"{p['reid']['faces_checked']} faces, background PSNR {u['background_psnr']:.1f} dB, "
          f"contracts {'passed' if audit['contracts'] else 'FAILED'}")


def _report(args) -> int:
    from faceveil.storage.paths import Location
    from faceveil.validation.report import load_audit, write_report

    dest = Location(args.dest)
    paths = write_report(dest, load_audit(dest, args.run), latest=args.run is None)
    print(f"{args.dest.rstrip('/')}/{paths['html']}")
    return EXIT_OK


def _evaluate(args) -> int:
    import tempfile

    from faceveil.flows.evaluate import run_evaluate
    from faceveil.validation.evaluation_table import format_table

    out = args.out or tempfile.mkdtemp(prefix="faceveil-evaluate-")
    result = run_evaluate(args.data, out, [m.strip() for m in args.methods.split(",") if m.strip()],
                          workers=args.workers, audit_every_s=args.audit_every, tracking_uri=args.mlflow_uri,
                          threshold=args.id_threshold)
    print(json.dumps(result, indent=2, default=str) if args.json else format_table(result))
    return EXIT_OK


def _keygen(args) -> int:
    from faceveil.storage.keys import MasterKey, write_key_file

    key = MasterKey.generate()
    write_key_file(args.path, key)
    print(f"key written to {args.path} (mode 0600), fingerprint {key.fingerprint}")
    print("keep it apart from the archive: whoever holds it can restore every face; losing it loses them all")
    return EXIT_OK


def _search(args) -> int:
    from faceveil.hashing import sha256_file
    from faceveil.ops.logged import logged
    from faceveil.storage.paths import Location
    from faceveil.storage.vault import check_key
    from faceveil.tasks.index import find_by_probe

    master, _ = _master(args, args.archive)
    archive = Location(args.archive)
    check_key(archive, master.fingerprint)  # a wrong key is refused before anything is logged
    with logged(archive, master, "search", args.reason, probe_sha256=sha256_file(args.probe),
                details={"top": args.top, "thumbnails": args.thumbnails}) as outcome:
        matches, cut, _digest = find_by_probe(archive, master, args.probe, args.face, args.top)
        thumbs = {}
        if args.thumbnails:
            import tempfile

            from faceveil.tasks.index import thumbnail

            thumbs = {m.ref: thumbnail(archive, m, args.thumbnails, i, tempfile.gettempdir()) for i, m in enumerate(matches)}
        outcome.matched, outcome.details = [m.ref for m in matches], {"threshold": cut}
    if args.json:
        print(json.dumps({"threshold": cut, "matches": [{**m.__dict__, "ref": m.ref, "thumbnail": thumbs.get(m.ref)}
                                                        for m in matches]}, indent=2))
    elif not matches:
        print(f"no match (no track scores >= {cut:.3f})")
    for m in ([] if args.json else matches):
        print(f"{m.score:.3f}  {m.rel_path}  track {m.track_id}  frames {m.first_frame}-{m.last_frame}  "
              f"{m.t_start_s:.2f}-{m.t_end_s:.2f} s  ({m.ref})" + (f"  {thumbs[m.ref]}" if m.ref in thumbs else ""))
    return EXIT_OK


def _calibrate(args) -> int:
    from faceveil.storage.paths import Location
    from faceveil.storage.vault import check_key
    from faceveil.tasks.index import calibrate

    master, _ = _master(args, args.archive)
    archive = Location(args.archive)
    check_key(archive, master.fingerprint)
    res = calibrate(archive, args.labelled, args.target_fmr)
    print(f"threshold {res['threshold']:.3f}: false-match rate {res['fmr']:.4f} (target {args.target_fmr}), "
          f"true-match rate {res['tmr']:.3f} on {res['photos']} photos of {res['identities']} people")
    return EXIT_OK


def _audit_log(args) -> int:
    from faceveil.storage import access_log
    from faceveil.storage.paths import Location

    archive = Location(args.archive)
    for r in access_log.tail(archive, args.tail):
        details = access_log.details(r)
        error = f"  ({details['error']})" if details.get("error") else ""
        print(f"{r['seq']:6d} {r['time']} {r['actor']:12} {r['action']:10} {details.get('outcome') or '':6} "
              f"{len(r['matched'] or [])} tracks  {r['reason']}{error}")
    if args.verify:
        master, _ = _master(args, args.archive)
        problems = access_log.verify(archive, master)
        for p in problems:
            print(f"TAMPERED {p}", file=sys.stderr)
        print("access log intact" if not problems else f"access log: {len(problems)} problem(s)")
        return EXIT_OK if not problems else EXIT_MEDIA_FAILED
    return EXIT_OK


def _restore(args) -> int:
    from faceveil.flows.restore import run_restore
    from faceveil.ops.logged import logged
    from faceveil.storage.paths import Location
    from faceveil.storage.vault import check_key
    from faceveil.tasks.restore import RestoreConfig

    master, _ = _master(args, args.archive)
    archive, digest = Location(args.archive), None
    if not (args.track or args.media or args.all or args.probe):
        raise ValueError("choose what to restore: --track MEDIA:TRACK, --media PATH, --all or --probe PHOTO")
    if args.probe:
        from faceveil.hashing import sha256_file

        if not args.reason:
            raise ValueError("restore --probe needs --reason (recorded in the access log)")
        digest = sha256_file(args.probe)
    check_key(archive, master.fingerprint)  # a wrong key is refused before anything is logged
    with logged(archive, master, "restore", args.reason or "(not given)", targets=args.track, probe_sha256=digest,
                details={"out": args.out, "media": args.media, "all": args.all}) as outcome:
        tracks = list(args.track)
        if args.probe:
            from faceveil.tasks.index import find_by_probe

            matches, cut, _digest = find_by_probe(archive, master, args.probe, args.face, top=1000)
            outcome.details["threshold"] = cut
            tracks += [m.ref for m in matches]
        if args.probe and not matches:
            report = None
        else:
            report = run_restore(RestoreConfig(args.archive, args.out, tracks=tracks, media=args.media, all=args.all,
                                               workers=args.workers, dask_address=args.dask_address), master)
            _restore_outcome(report, outcome)
    if report is None:
        print(f"no match (no track scores >= {cut:.3f}): nothing restored")
        return EXIT_OK
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        for m in report["media"]:
            print(f"{m['status']:8} {m['path']}: {m.get('regions_restored', 0)} face regions restored"
                  + (f", tracks {m['forgotten_tracks']} forgotten" if m.get("forgotten_tracks") else ""))
        print(f"restored media: {args.out.rstrip('/')}/  report: {args.out.rstrip('/')}/_faceveil/restore/{report['run_id']}.json")
    for m in report["media"]:
        for why in m.get("refused_regions", []):
            print(f"REFUSED {why}", file=sys.stderr)
        if m["status"] == "failed":
            print(f"FAILED {m['path']}: {m['reason']}", file=sys.stderr)
    return EXIT_OK if report["ok"] == len(report["media"]) else EXIT_MEDIA_FAILED


def _restore_outcome(report: dict, outcome) -> None:
    """What a restore run did, for its outcome row: 'failed' unless every media restored whole."""
    media = report["media"]
    outcome.matched = sorted({f"{m['media_id']}:{t}" for m in media if m.get("media_id") for t in m.get("tracks", [])})
    outcome.details.update(report=report["run_id"], ok=report["ok"], partial=report["partial"], failed=report["failed"])
    bad = [f"{m['path']}: {m['status']} ({m.get('reason') or str(len(m.get('refused_regions') or [])) + ' regions refused'})"
           for m in media if m["status"] != "ok"]
    if bad:
        outcome.error = f"{len(bad)} of {len(media)} media not restored whole: " + "; ".join(bad)


def _rotate_key(args) -> int:
    from faceveil.ops.logged import logged
    from faceveil.storage.keys import VaultLock, load_key
    from faceveil.storage.paths import Location
    from faceveil.storage.vault import check_key, rotate_key
    from faceveil.tasks.index import reproject_index

    old, _ = _master(args, args.archive)
    new = load_key(args.new_key)
    archive = Location(args.archive)
    check_key(archive, old.fingerprint)
    if new.matches(old.fingerprint):
        raise ValueError("the new key is the archive's key already: nothing to rotate")
    with logged(archive, old, "rotate-key", args.reason, details={"new_key": new.fingerprint}) as outcome:
        n = rotate_key(archive, old, VaultLock.of(new))
        outcome.hand_over_to = new  # the vault opens with the new key only now: so does the log, from its outcome row
        m = reproject_index(archive, old, new)
        outcome.details = {"data_keys": n, "templates": m}
    print(f"{n} data keys re-wrapped and {m} identity templates re-sealed: {args.archive} now opens "
          f"and searches with {new.fingerprint} only; the access log goes on with it")
    return EXIT_OK


def _forget(args) -> int:
    from faceveil.ops.logged import logged
    from faceveil.storage.paths import Location
    from faceveil.storage.vault import check_key
    from faceveil.tasks.restore import forget

    master, _ = _master(args, args.archive)
    archive = Location(args.archive)
    check_key(archive, master.fingerprint)
    with logged(archive, master, "forget", args.reason, targets=args.track) as outcome:
        done = forget(args.archive, master, args.track)
        outcome.matched, outcome.details = list(args.track), {"forgotten": done}
    for path, tracks in done.items():
        print(f"forgotten {path}: tracks {tracks or '(already forgotten)'}")
    return EXIT_OK


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
    from faceveil.offline import set_offline_env

    set_offline_env()
    handlers = {"anonymize": _anonymize, "keygen": _keygen, "restore": _restore, "forget": _forget, "rotate-key": _rotate_key,
                "search": _search, "calibrate": _calibrate, "audit-log": _audit_log, "sample": _sample,
                "report": _report, "evaluate": _evaluate}
    from faceveil.validation.errors import ContractError

    try:
        return handlers[args.command](args)
    except ContractError as e:
        print(f"faceveil: run failed: {e}", file=sys.stderr)
        return EXIT_CONTRACT
    except (FileNotFoundError, NotADirectoryError, ValueError, PermissionError) as e:
        print(f"faceveil: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("faceveil: interrupted; re-run the same command to finish (finished media are kept)", file=sys.stderr)
        return 130
    except RuntimeError as e:  # an access log that cannot be read or written
        log = sys.modules.get("faceveil.storage.access_log")  # loaded whenever it raised (not imported for this)
        if log is None or not isinstance(e, log.AccessLogError):
            raise
        print(f"faceveil: access log: {e}", file=sys.stderr)
        return EXIT_USAGE


def run() -> None:
    """The console script. Once the command is done and every atexit handler has run, it exits
    without tearing the interpreter down (that alone took ~1 s with Prefect, Dask and onnxruntime
    loaded); everything it writes is committed and flushed before."""
    import atexit

    done: list[int] = []

    def fast_exit() -> None:  # registered first, so it runs after every other atexit handler
        if done:
            import logging

            logging.shutdown()
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(done[0])

    atexit.register(fast_exit)
    done.append(main())
    sys.exit(done[0])


if __name__ == "__main__":
    run()
