"""The command line's grammar: one subparser per command (their shared option groups: cli/options)."""

from __future__ import annotations

import argparse
import sys

from faceveil.cli.options import add_anonymize, add_cluster_args, add_key_args, add_state_arg


def _add_report(sub) -> None:
    p = sub.add_parser("report", help="render a run's report (HTML) again from its stored report JSON")
    p.add_argument("dest", help="an anonymized archive (folder or s3://)")
    p.add_argument("--run", default=None, help="run id (default: the latest run)")
    add_state_arg(p)
    p = sub.add_parser(
        "migrate-state",
        help="move an old archive's private files (DEST/_faceveil/) out of DEST into "
        "its state root (the next run does it too)",
    )
    p.add_argument("dest", help="an anonymized archive (folder or s3://)")
    add_state_arg(p)
    p = sub.add_parser(
        "evaluate", help="compare anonymization methods on labelled data (folders of photos per person, videos)"
    )
    p.add_argument("data", help="folder: faces/<person>/*.jpg and/or videos")
    p.add_argument(
        "--methods",
        default="solid,blur,mosaic,scramble",
        help="comma-separated (default: solid,blur,mosaic,scramble); METHOD@SCOPE for a masking method "
        "at --scope head or person (e.g. solid,solid@head)",
    )
    p.add_argument("--out", default=None, help="where the anonymized copies go (default: a temporary folder)")
    p.add_argument(
        "--id-threshold",
        type=float,
        default=None,
        metavar="COSINE",
        help="identity match threshold (default: calibrated on the labelled photos, else the embedder's)",
    )
    p.add_argument("--threshold", dest="id_threshold", type=_deprecated_threshold, help=argparse.SUPPRESS)
    p.add_argument(
        "--check-every", type=float, default=0.5, metavar="SECONDS", help="checked video frames (default 0.5 s)"
    )
    p.add_argument(
        "--audit-every", dest="check_every", type=float, default=argparse.SUPPRESS, help=argparse.SUPPRESS
    )  # the old name
    p.add_argument("--mlflow-uri", default=None, help="MLflow tracking URI (default: sqlite under OUT/mlflow)")
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
    add_state_arg(p)
    p.add_argument("out", help="where restored media go (same tree)")
    p.add_argument(
        "--track",
        action="append",
        default=[],
        metavar="MEDIA:TRACK",
        help="a track to restore (MEDIA: media id or relative path); repeatable",
    )
    p.add_argument("--media", action="append", default=[], metavar="PATH", help="restore every face of this media")
    p.add_argument("--all", action="store_true", help="restore every face of the archive")
    p.add_argument("--probe", default=None, metavar="PHOTO", help="restore the tracks that match this person's photo")
    p.add_argument("--face", type=int, default=None, help="with several faces in the probe photo: which (0 = largest)")
    p.add_argument("--reason", default=None, help="why (recorded in the access log; required with --probe)")
    p.add_argument("--json", action="store_true", help="print the restore report as JSON")
    add_key_args(p)
    add_cluster_args(p)
    p = sub.add_parser("search", help="find a person's tracks across the archive by one photo (needs the key)")
    p.add_argument("archive")
    add_state_arg(p)
    p.add_argument("--probe", required=True, metavar="PHOTO")
    p.add_argument("--reason", required=True, help="why (recorded in the access log)")
    p.add_argument("--top", type=int, default=10)
    p.add_argument("--thumbnails", default=None, metavar="DIR", help="write each match's anonymized thumbnail here")
    p.add_argument("--face", type=int, default=None, help="with several faces in the photo: which (0 = largest)")
    p.add_argument("--json", action="store_true")
    add_key_args(p)
    p = sub.add_parser("calibrate", help="set the index's match threshold from labelled photos (a folder per person)")
    p.add_argument("archive")
    add_state_arg(p)
    p.add_argument("--labelled", required=True, metavar="DIR")
    p.add_argument("--target-fmr", type=float, default=0.01, help="false-match rate to allow (default 0.01)")
    p.add_argument(
        "--people",
        type=int,
        default=None,
        metavar="N",
        help="about how many people the archive holds: a search competes with each (default: the labelled ones)",
    )
    add_key_args(p)
    _add_access_log(sub)
    p = sub.add_parser("rotate-key", help="move the vault and identity index to a new master key (needs both keys)")
    p.add_argument("archive")
    add_state_arg(p)
    p.add_argument("--new-key", required=True, help="the new key file (from `faceveil keygen`)")
    p.add_argument("--reason", default="key rotation", help="why (recorded in the access log)")
    add_key_args(p)
    p = sub.add_parser("forget", help="crypto-shred tracks: their originals become unrecoverable (needs the key)")
    p.add_argument("archive")
    add_state_arg(p)
    p.add_argument("--track", action="append", required=True, metavar="MEDIA:TRACK")
    p.add_argument("--reason", required=True, help="why (recorded in the access log)")
    add_key_args(p)


def _add_access_log(sub) -> None:
    """`access-log` (show, verify) and `log-key` (the auditor's key that lets verify tell re-signed or cut rows)."""
    p = sub.add_parser(
        "access-log",
        aliases=["audit-log"],
        help="show or verify the archive's access log (needs the key to verify; audit-log: the old name)",
    )
    p.add_argument("archive")
    add_state_arg(p)
    p.add_argument("--verify", action="store_true")
    p.add_argument(
        "--log-key",
        default=None,
        metavar="FILE",
        help="verify with the auditor's log key (from `faceveil log-key`; implies --verify): tells rows "
        "re-signed or cut by a key holder; the master key is then optional",
    )
    p.add_argument("--tail", type=int, default=20)
    add_key_args(p)
    p = sub.add_parser(
        "log-key",
        help="set up the access log's auditor key (forward-secure tags a key holder cannot "
        "forge) and write it to OUTFILE (0600; needs the master key)",
    )
    p.add_argument("archive")
    p.add_argument(
        "out", metavar="OUTFILE", help="where the log key goes (refused if it exists): give it to the auditor"
    )
    add_state_arg(p)
    p.add_argument("--reason", default="log key set up", help="why (recorded in the access log)")
    add_key_args(p)


def _add_publish(sub) -> None:
    from faceveil.cli.publish import add_arguments

    add_arguments(
        sub.add_parser("publish", help="publish a face dataset with every identity replaced (folder or s3://)")
    )


def _add_review(sub) -> None:
    from faceveil.cli.review import add_arguments

    add_arguments(
        sub.add_parser(
            "review",
            help="review what the leak gate withheld on a local page (127.0.0.1, "
            "one-time token): add a missed face, release or keep, all logged",
        )
    )


def _add_check(sub) -> None:
    from faceveil.cli.check import add_arguments

    add_arguments(
        sub.add_parser(
            "check",
            help="deep leak check of the published and released media (many frames "
            "each; only outputs changed since their last check): exit 1 on a leak",
        )
    )


def _add_sample(sub) -> None:
    p = sub.add_parser("sample", help="write the built-in sample archive (videos with audio, photos)")
    p.add_argument("dest")


def _add_serve(sub) -> None:
    p = sub.add_parser(
        "serve",
        help="run the scheduled deployments: a Prefect server (or $PREFECT_API_URL's), "
        "the work pool, the deployments of deployments/prefect.yaml and a worker",
    )
    p.add_argument(
        "--config",
        default=None,
        metavar="FILE",
        help="the archive's config file (TOML) the deployments run on (default: $FACEVEIL_CONFIG)",
    )
    p.add_argument("--port", type=int, default=4200, help="the Prefect server's port on 127.0.0.1 (default 4200)")
    p.add_argument(
        "--prefect-file",
        default=None,
        metavar="FILE",
        help="the deployments (default: deployments/prefect.yaml beside the faceveil package)",
    )
    p.add_argument("--no-worker", dest="worker", action="store_false", help="register the deployments, run no worker")


def given_options(argv: list[str]) -> set[str]:
    """The option names (dests) the command line `argv` gives explicitly, defaults left out: a
    config file's value stands where no flag overrides it."""
    parser = build_parser(argv)
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                for a in sub._actions:
                    a.default = argparse.SUPPRESS
    return set(vars(parser.parse_args(argv))) - {"command"}


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The parser for `argv`: anonymize's SRC and DEST are optional when it gives --config (a
    parser with optional positionals would not take `SRC --flag DEST`, so only then)."""
    parser = argparse.ArgumentParser(
        prog="faceveil", description="Anonymize faces in video archives and face datasets."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    with_config = any(a == "--config" or a.startswith("--config=") for a in (argv or ()))
    add_anonymize(sub, "?" if with_config else None)
    add_anonymize(sub, "?" if with_config else None, name="pulse")
    _add_keys(sub)
    _add_sample(sub)
    _add_report(sub)
    _add_serve(sub)
    _add_publish(sub)
    _add_review(sub)
    _add_check(sub)
    return parser
