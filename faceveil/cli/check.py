"""`faceveil check DEST [--frames N]`: the deep leak check of the archive's published and released
media, in this process (no Prefect): one line per media, a total with the run-level 95 % bound of
the leak rate; exit 1 when a leak was found or an output could not be checked (ops/deep_check)."""

from __future__ import annotations

from faceveil.cli.exits import EXIT_MEDIA_FAILED, EXIT_OK


def add_arguments(p) -> None:
    p.add_argument("dest", metavar="DEST", help="an anonymized archive (folder or s3://)")
    p.add_argument(
        "--frames",
        type=int,
        default=None,
        metavar="N",  # None: validation.deep_check.DEEP_FRAMES
        help="checked frames per video, spread evenly (default 300; every frame of a shorter one)",
    )
    p.add_argument(
        "--state",
        default=None,
        metavar="DIR",
        help="the archive's private state root (default: found beside DEST, as for every command)",
    )


def check(args) -> int:
    from faceveil.cli.keyed import archive_state
    from faceveil.ops.deep_check import line, run_check, total_line
    from faceveil.storage.paths import Location
    from faceveil.validation.deep_check import DEEP_FRAMES

    state = archive_state(args, args.dest)
    result = run_check(Location(args.dest), state, DEEP_FRAMES if args.frames is None else args.frames)
    for r in result["rows"]:
        print(line(r))
    print(
        total_line(result) + f"; {result['checked']} checked now in {result['seconds']:.1f} s, "
        f"results in {state.display('checks/deep.parquet')}"
    )
    return EXIT_MEDIA_FAILED if result["leaks"] or result["errors"] else EXIT_OK
