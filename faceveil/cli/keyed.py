"""The commands that need the master key: keygen, search, calibrate, access-log, log-key, restore,
rotate-key, forget; and reading the key from --key / $FACEVEIL_KEY or a passphrase.
Over 300 lines: one short handler per keyed command, sharing how the key is read (`_master`); `_restore`
is over 60 lines: the refusals before the key is read, the logged restore (by tracks or by a probe
photo) and its report, in the order the access log needs."""

from __future__ import annotations

import json
import os
import sys

from faceveil.cli.exits import EXIT_MEDIA_FAILED, EXIT_OK


def archive_state(args, archive: str | None = None, state: str | None = None):
    """The private state root of the archive a command names (`state`, else --state, else found
    beside DEST, or an old archive's DEST/_faceveil: storage/state.find_state)."""
    from faceveil.storage.state import find_state

    return find_state(archive or args.archive, state or getattr(args, "state", None))


def _master(args, state):
    """The master key from --key / $FACEVEIL_KEY, or --passphrase with the archive's KDF (Argon2id
    parameters and salt, kept in its vault's keyinfo in the state root `state`)."""
    from faceveil.storage.keys import MasterKey, load_key

    if args.passphrase:
        import getpass

        from faceveil.storage.vault import passphrase_kdf

        phrase = os.environ.get("FACEVEIL_PASSPHRASE") or getpass.getpass("faceveil passphrase: ")
        kdf = passphrase_kdf(state)
        return MasterKey.from_passphrase(phrase, kdf), kdf
    return load_key(args.key), None


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
    from faceveil.storage.vault import check_master
    from faceveil.ops.search import find_by_probe

    archive = archive_state(args)
    master, _ = _master(args, archive)
    check_master(archive, master)  # a wrong key is refused before anything is logged
    with logged(
        archive,
        master,
        "search",
        args.reason,
        probe_sha256=sha256_file(args.probe),
        details={"top": args.top, "thumbnails": args.thumbnails},
    ) as outcome:
        matches, cut, _digest = find_by_probe(archive, master, args.probe, args.face, args.top)
        thumbs = {}
        if args.thumbnails:
            import tempfile

            from faceveil.ops.thumbnails import thumbnail

            from faceveil.storage.paths import Location

            public = Location(args.archive)
            thumbs = {
                m.ref: thumbnail(public, archive, m, args.thumbnails, i, tempfile.gettempdir())
                for i, m in enumerate(matches)
            }
        outcome.matched, outcome.details = [m.ref for m in matches], {"threshold": cut}
    if args.json:
        print(
            json.dumps(
                {
                    "threshold": cut,
                    "matches": [{**m.__dict__, "ref": m.ref, "thumbnail": thumbs.get(m.ref)} for m in matches],
                },
                indent=2,
            )
        )
    elif not matches:
        print(f"no match (no track scores >= {cut:.3f})")
    for m in [] if args.json else matches:
        print(
            f"{m.score:.3f}  {m.rel_path}  track {m.track_id}  frames {m.first_frame}-{m.last_frame}  "
            f"{m.t_start_s:.2f}-{m.t_end_s:.2f} s  ({m.ref})" + (f"  {thumbs[m.ref]}" if m.ref in thumbs else "")
        )
    return EXIT_OK


def _calibrate(args) -> int:
    from faceveil.storage.vault import check_master
    from faceveil.ops.calibrate import calibrate

    archive = archive_state(args)
    master, _ = _master(args, archive)
    check_master(archive, master)
    res = calibrate(archive, master, args.labelled, args.target_fmr, people=args.people)
    print(
        f"threshold {res['threshold']:.3f} (the labelled photos alone: {res['empirical_threshold']:.3f}; for "
        f"{res['people']} people, {res['confidence']:.0%} sure): false-match rate {res['fmr']:.4f} "
        f"(target {args.target_fmr}), true-match rate {res['tmr']:.3f} on {res['photos']} photos of "
        f"{res['identities']} people"
    )
    return EXIT_OK


def _access_log(args) -> int:
    from faceveil.storage import access_log, log_anchors, log_seal
    from faceveil.storage.auditor_key import load_log_key

    archive = archive_state(args)
    for r in access_log.tail(archive, args.tail):
        details = access_log.details(r)
        error = f"  ({details['error']})" if details.get("error") else ""
        print(
            f"{r['seq']:6d} {r['time']} {r['actor']:12} {r['action']:10} {details.get('outcome') or '':6} "
            f"{len(r['matched'] or [])} tracks  {r['reason']}{error}"
        )
    if args.verify or args.log_key:
        from faceveil.storage.keys import ENV_VAR

        log_key = load_log_key(args.log_key) if args.log_key else None
        master = None  # the auditor may have the log key only
        if log_key is None or args.key or args.passphrase or os.environ.get(ENV_VAR):
            master, _ = _master(args, archive)
        problems = access_log.verify(archive, master, log_key=log_key, anchors=log_anchors.gather(archive))
        for p in problems:
            print(f"TAMPERED {p}", file=sys.stderr)
        print("access log intact" if not problems else f"access log: {len(problems)} problem(s)")
        if log_key is None:
            print(
                "note: whoever holds the master key can re-sign rows so that this check passes; the auditor's "
                "log key (--log-key) tells",
                file=sys.stderr,
            )
            if log_seal.read_state(archive) is None:
                print(
                    f"note: no log key is set up for this archive: `faceveil log-key {args.archive} FILE` "
                    "makes one for the auditor",
                    file=sys.stderr,
                )
        elif master is None:
            print("note: rows' master-key MACs not checked (no --key)", file=sys.stderr)
        return EXIT_OK if not problems else EXIT_MEDIA_FAILED
    return EXIT_OK


def _log_key(args) -> int:
    """`log-key ARCHIVE OUTFILE`: sets up the auditor's log key and writes it to OUTFILE (0600)."""
    from faceveil.ops.logged import logged
    from faceveil.storage import access_log, log_seal
    from faceveil.storage.auditor_key import write_log_key_file
    from faceveil.storage.vault import check_master

    archive = archive_state(args)
    if os.path.lexists(args.out):
        raise ValueError(f"{args.out}: a file already exists (not overwritten); nothing was written")
    master, _ = _master(args, archive)
    check_master(archive, master)  # a wrong key is refused before anything is logged
    if log_seal.read_state(archive) is not None:
        raise ValueError(
            f"{archive.display(log_seal.FOLDER)}: this archive has a log key set up already; nothing was written"
        )
    with logged(archive, master, "log-key", args.reason) as outcome:
        key = access_log.set_up_seal(archive, master)
        try:
            write_log_key_file(args.out, key)
        except BaseException:
            log_seal.undo_set_up(archive, key)
            raise
        outcome.details = {"log_key": key.id, "start": key.start}
    print(f"log key {key.id} written to {args.out} (mode 0600): it seals the access log from seq {key.start} on")
    print(
        "give it to the auditor, apart from the master key and the archive: `faceveil access-log ARCHIVE "
        "--log-key FILE` then tells rows re-signed or cut by a key holder"
    )
    return EXIT_OK


def _restore(args) -> int:
    from faceveil.flows.restore import run_restore
    from faceveil.ops.logged import logged
    from faceveil.storage.state import check_restore_out
    from faceveil.storage.vault import check_master
    from faceveil.tasks.restore_media import RestoreConfig

    archive, digest = archive_state(args), None
    check_restore_out(args.out, args.archive, archive.url)  # before the key is even read: nothing written
    master, _ = _master(args, archive)
    if not (args.track or args.media or args.all or args.probe):
        raise ValueError("choose what to restore: --track MEDIA:TRACK, --media PATH, --all or --probe PHOTO")
    if args.probe:
        from faceveil.hashing import sha256_file

        if not args.reason:
            raise ValueError("restore --probe needs --reason (recorded in the access log)")
        digest = sha256_file(args.probe)
    check_master(archive, master)  # a wrong key is refused before anything is logged
    with logged(
        archive,
        master,
        "restore",
        args.reason or "(not given)",
        targets=args.track,
        probe_sha256=digest,
        details={"out": args.out, "media": args.media, "all": args.all},
    ) as outcome:
        tracks = list(args.track)
        if args.probe:
            from faceveil.ops.search import find_by_probe

            matches, cut, _digest = find_by_probe(archive, master, args.probe, args.face, top=1000)
            outcome.details["threshold"] = cut
            tracks += [m.ref for m in matches]
        if args.probe and not matches:
            report = None
        else:
            report = run_restore(
                RestoreConfig.of(
                    args.archive,
                    args.out,
                    tracks=tracks,
                    media=args.media,
                    all=args.all,
                    workers=args.workers,
                    dask_address=args.dask_address,
                    dask_tls_ca=args.dask_tls_ca,
                    dask_tls_cert=args.dask_tls_cert,
                    dask_tls_key=args.dask_tls_key,
                    state=archive.url,
                ),
                master,
            )
            _restore_outcome(report, outcome)
    if report is None:
        print(f"no match (no track scores >= {cut:.3f}): nothing restored")
        return EXIT_OK
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        for m in report["media"]:
            print(
                f"{m['status']:8} {m['path']}: {m.get('regions_restored', 0)} face regions restored"
                + (f", tracks {m['forgotten_tracks']} forgotten" if m.get("forgotten_tracks") else "")
            )
        print(
            f"restored media: {args.out.rstrip('/')}/  report: {archive.display('restore/' + report['run_id'] + '.json')}"
        )
    for m in report["media"]:
        for why in m.get("refused_regions", []):
            print(f"REFUSED {why}", file=sys.stderr)
        if m["status"] == "failed":
            print(f"FAILED {m['path']}: {m['reason']}", file=sys.stderr)
    return EXIT_OK if report["ok"] == len(report["media"]) else EXIT_MEDIA_FAILED


def _restore_outcome(report: dict, outcome) -> None:
    from faceveil.ops.logged import restore_outcome

    restore_outcome(report, outcome)


def _rotate_key(args) -> int:
    """Resumable: run again with both keys after an interruption, it finishes what is left (vault
    parts, index templates, the access log's hand-over to the new key)."""
    from faceveil.ops.logged import logged
    from faceveil.storage import access_log
    from faceveil.storage.keys import load_key
    from faceveil.storage.vault import rotate_key, rotation_checked
    from faceveil.ops.reproject import reproject_index

    archive = archive_state(args)
    old, _ = _master(args, archive)
    new = load_key(args.new_key)
    if new.matches(old.fingerprint):
        raise ValueError("the new key is the archive's key already: nothing to rotate")
    moved = rotation_checked(archive, old, new)  # a wrong key is refused before anything is logged
    last = access_log.tail(archive, 1)
    if moved and (not last or new.matches(str(last[0]["key_fingerprint"]))):
        print(f"{args.archive} is kept with {new.fingerprint} already: nothing to rotate")
        return EXIT_OK
    with logged(
        archive, old, "rotate-key", args.reason, details={"new_key": new.fingerprint, "resumed": moved}
    ) as outcome:
        n = rotate_key(archive, old, new)
        outcome.hand_over_to = new  # the vault opens with the new key only now: so does the log, from its outcome row
        m = reproject_index(archive, old, new)
        outcome.details = {"data_keys": n, "templates": m}
    print(
        f"{n} data keys re-wrapped and {m} identity templates re-sealed: {args.archive} now opens "
        f"and searches with {new.fingerprint} only; the access log goes on with it"
    )
    return EXIT_OK


def _forget(args) -> int:
    from faceveil.ops.logged import logged
    from faceveil.storage.vault import check_master
    from faceveil.ops.forget import forget

    archive = archive_state(args)
    master, _ = _master(args, archive)
    check_master(archive, master)
    with logged(archive, master, "forget", args.reason, targets=args.track) as outcome:
        done = forget(archive, master, args.track)
        outcome.matched, outcome.details = list(args.track), {"forgotten": done}
    for path, tracks in done.items():
        print(f"forgotten {path}: tracks {tracks or '(already forgotten)'}")
    return EXIT_OK
