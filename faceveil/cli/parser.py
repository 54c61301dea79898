"""The command line's grammar: one subparser per command, the option groups they share."""
from __future__ import annotations

import argparse
import sys


def _add_anonymize(sub, paths: str | None = None, name: str = "anonymize") -> None:
    """`anonymize`, or `pulse` (the same options; --method keep --pulse scrub by default)."""
    pulse = name == "pulse"
    p = sub.add_parser(name, help="remove the pulse (rPPG) signal from the visible faces of an archive "
                                  "(= anonymize --method keep --pulse scrub)" if pulse else
                                  "anonymize every face of an archive (folder or s3://)")
    p.add_argument("src", nargs=paths, help="source folder or s3://bucket/prefix (with --config: optional, `src` there)")
    p.add_argument("dest", nargs=paths, help="destination folder or s3://bucket/prefix (with --config: optional, `dest` there)")
    p.add_argument("--config", default=None, metavar="FILE",
                   help="settings from a TOML file (AnonymizeConfig's field names; the key by reference in a [key] "
                        "table); flags given here override it")
    p.add_argument("--method", default="keep" if pulse else "mosaic",
                   help="solid | blur | mosaic | scramble (keyed, needs --key) | replace | keep (faces left visible: "
                        f"only --pulse edits them) (default: {'keep' if pulse else 'mosaic'})")
    p.add_argument("--pulse", default="scrub" if pulse else None, metavar="scrub|target:BPM",
                   help="edit the heart-rate (rPPG) signal in the skin of visible faces (--method keep or replace): "
                        "scrub = no periodic signal in 0.7-4 Hz; target:BPM = estimators read BPM instead"
                        + (" (default: scrub)" if pulse else ""))
    _add_state_arg(p)
    p.add_argument("--reversible", action="store_true",
                   help="seal every original face region in the state root's vault/ and index each track's identity (needs a key)")
    p.add_argument("--no-index", action="store_true", help="with --reversible: no identity index")
    _add_key_args(p)
    p.add_argument("--detector", default="centerface", help="centerface | dlib-hog (default: centerface)")
    p.add_argument("--threshold", type=float, default=None, help="detector score threshold (default: the detector's)")
    p.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "int8"],
                   help="centerface's arithmetic: auto (default: bf16 where the CPU has it natively, else fp32), fp32 "
                        "(as shipped), bf16 (OpenVINO; 2.5x faster than fp32 on CPUs with AVX512-BF16/AMX, scores "
                        "shifted to keep fp32's faces) or int8 (derived: half the CPU time, but it misses about half "
                        "the faces fp32 finds in night footage)")
    p.add_argument("--min-size", type=float, default=0.0, help="ignore faces smaller than this many pixels")
    p.add_argument("--scale", type=float, default=1.0, help="detector inference scale (0.5 = half resolution)")
    p.add_argument("--detect-fps", type=float, default=7.5,
                   help="least video frames per second the detector looks at; the tracker covers the rest (default: 7.5)")
    p.add_argument("--detect-mpx-per-s", type=float, default=6.0, help="detector budget: every frame is looked at while "
                   "this costs at most N megapixels per second of video (default: 6)")
    p.add_argument("--detect-every", type=int, default=None, help="run the detector on every N-th video frame instead")
    p.add_argument("--second-look", type=float, default=0.5, metavar="SCALE",
                   help="look again at each anonymized frame with faces, at this detector scale, and mask what is found then (0 = off; default 0.5)")
    p.add_argument("--no-track", dest="track", action="store_false", help="no tracking: detect on every frame, no gap filling")
    p.add_argument("--mask", dest="mask_shape", default="box", choices=["box", "ellipse"])
    p.add_argument("--scope", default="face", choices=["face", "head", "person"],
                   help="what solid, blur and mosaic cover: the face region (default), the head with its hair, or "
                        "the person's silhouette (both segmented around each face; the whole extent if the "
                        "segmentation model is missing)")
    p.add_argument("--pad", type=float, default=0.4, help="mask margin as a fraction of face size")
    p.add_argument("--max-gap", type=int, default=10, help="frames a face may be missed inside a track and still be covered")
    p.add_argument("--lossless", action="store_true", help="lossless output (FFV1 in MKV for video, lossless images)")
    p.add_argument("--crf", type=int, default=18, help="x264 quality (lower is better)")
    p.add_argument("--preset", default="veryfast", help="x264 preset")
    _add_cluster_args(p)
    p.add_argument("--gpu-workers", action="store_true",
                   help="run detection, anonymizing and encoding only on Dask workers started with "
                        "`--resources GPU=1` (with --dask-address; without such workers those tasks never start)")
    _add_audit_args(p)
    _add_gate_args(p)
    p.add_argument("--dry-run", action="store_true", help="print the plan and exit")
    p.add_argument("--json", action="store_true", help="print the run summary as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--verbose", action="store_true", help="show Prefect and Dask logs")


def _add_state_arg(p) -> None:
    p.add_argument("--state", default=None, metavar="DIR",
                   help="the archive's private state root: manifests, vault, identity index, access log, quarantine, "
                        "reports, MLflow (folder or s3://; default: DEST.faceveil-private beside DEST; never inside DEST)")


def _add_key_args(p) -> None:
    p.add_argument("--key", default=None, help="key file (from `faceveil keygen`); default: $FACEVEIL_KEY")
    p.add_argument("--passphrase", action="store_true",
                   help="derive the key from a passphrase (Argon2id): $FACEVEIL_PASSPHRASE, else asked for")


def _add_cluster_args(p) -> None:
    g = p.add_mutually_exclusive_group()
    g.add_argument("--workers", type=int, default=None, help="local Dask workers (default: one per core)")
    g.add_argument("--dask-address", default=None, help="an existing Dask scheduler, e.g. tls://host:8786 (restore "
                   "refuses a plain tcp:// one: it sends data keys)")
    p.add_argument("--dask-tls-ca", default=None, metavar="FILE", help="with a tls:// --dask-address: the cluster's CA "
                   "certificate (default: Dask's config distributed.comm.tls.ca-file)")
    p.add_argument("--dask-tls-cert", default=None, metavar="FILE", help="with a tls:// --dask-address: this client's "
                   "certificate, signed by that CA (default: distributed.comm.tls.client.cert)")
    p.add_argument("--dask-tls-key", default=None, metavar="FILE", help="with a tls:// --dask-address: the certificate's "
                   "private key, unless the certificate file holds it (default: distributed.comm.tls.client.key)")


def _add_audit_args(p) -> None:
    p.add_argument("--check-every", type=float, default=4.0, metavar="SECONDS",
                   help="check one output frame per this many seconds of video (at most --check-frames per video) for leaks, "
                        "re-identification and quality (default 4; each check costs ~0.5 s of CPU at 720p; 0 = no "
                        "checks, and the data contract then does not ask for them)")
    p.add_argument("--audit-every", dest="check_every", type=float, default=argparse.SUPPRESS, help=argparse.SUPPRESS)  # the old name
    p.add_argument("--check-frames", type=int, default=30, metavar="N",
                   help="at most N checked frames per video (default 30); more checked faces give a tighter bound on "
                        "the leak rate (the report's 95%% bound)")
    p.add_argument("--mlflow-uri", default=None,
                   help="MLflow tracking URI (default: $FACEVEIL_MLFLOW_URI, else sqlite under the state root's mlflow/)")
    p.add_argument("--mlflow-artifacts", default=None, metavar="URI",
                   help="MLflow's artifact root, e.g. s3://bucket/prefix (default: $FACEVEIL_MLFLOW_ARTIFACTS, else "
                        "beside the store; S3 endpoint: $MLFLOW_S3_ENDPOINT_URL, else $FACEVEIL_S3_ENDPOINT)")


def _add_gate_args(p) -> None:
    p.add_argument("--max-leak", type=float, default=0.0, metavar="PERCENT",
                   help="the leak gate withholds a media when its checked frames show more unmasked faces than this "
                        "share of their faces (default 0: any unmasked face); withheld outputs go to "
                        "the state root's quarantine/, never the public tree, and the run exits 1 (100: the gate is off)")
    p.add_argument("--no-recheck", dest="recheck", action="store_false",
                   help="withhold a media that leaked at once (default: anonymize it once more, detecting twice as "
                        "often, down to below the leak gate's thresholds and with the gate's other detector family "
                        "beside the main one, and check again)")


def _add_report(sub) -> None:
    p = sub.add_parser("report", help="render a run's audit report (HTML) again from its stored audit JSON")
    p.add_argument("dest", help="an anonymized archive (folder or s3://)")
    p.add_argument("--run", default=None, help="run id (default: the latest run)")
    _add_state_arg(p)
    p = sub.add_parser("migrate-state", help="move an old archive's private files (DEST/_faceveil/) out of DEST into "
                                             "its state root (the next run does it too)")
    p.add_argument("dest", help="an anonymized archive (folder or s3://)")
    _add_state_arg(p)
    p = sub.add_parser("evaluate", help="compare anonymization methods on labelled data (folders of photos per person, videos)")
    p.add_argument("data", help="folder: faces/<person>/*.jpg and/or videos")
    p.add_argument("--methods", default="solid,blur,mosaic,scramble",
                   help="comma-separated (default: solid,blur,mosaic,scramble); METHOD@SCOPE for a masking method "
                        "at --scope head or person (e.g. solid,solid@head)")
    p.add_argument("--out", default=None, help="where the anonymized copies go (default: a temporary folder)")
    p.add_argument("--id-threshold", type=float, default=None, metavar="COSINE",
                   help="identity match threshold (default: calibrated on the labelled photos, else the embedder's)")
    p.add_argument("--threshold", dest="id_threshold", type=_deprecated_threshold, help=argparse.SUPPRESS)
    p.add_argument("--check-every", type=float, default=0.5, metavar="SECONDS", help="checked video frames (default 0.5 s)")
    p.add_argument("--audit-every", dest="check_every", type=float, default=argparse.SUPPRESS, help=argparse.SUPPRESS)  # the old name
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
    _add_state_arg(p)
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
    _add_state_arg(p)
    p.add_argument("--probe", required=True, metavar="PHOTO")
    p.add_argument("--reason", required=True, help="why (recorded in the access log)")
    p.add_argument("--top", type=int, default=10)
    p.add_argument("--thumbnails", default=None, metavar="DIR", help="write each match's anonymized thumbnail here")
    p.add_argument("--face", type=int, default=None, help="with several faces in the photo: which (0 = largest)")
    p.add_argument("--json", action="store_true")
    _add_key_args(p)
    p = sub.add_parser("calibrate", help="set the index's match threshold from labelled photos (a folder per person)")
    p.add_argument("archive")
    _add_state_arg(p)
    p.add_argument("--labelled", required=True, metavar="DIR")
    p.add_argument("--target-fmr", type=float, default=0.01, help="false-match rate to allow (default 0.01)")
    _add_key_args(p)
    _add_access_log(sub)
    p = sub.add_parser("rotate-key", help="move the vault and identity index to a new master key (needs both keys)")
    p.add_argument("archive")
    _add_state_arg(p)
    p.add_argument("--new-key", required=True, help="the new key file (from `faceveil keygen`)")
    p.add_argument("--reason", default="key rotation", help="why (recorded in the access log)")
    _add_key_args(p)
    p = sub.add_parser("forget", help="crypto-shred tracks: their originals become unrecoverable (needs the key)")
    p.add_argument("archive")
    _add_state_arg(p)
    p.add_argument("--track", action="append", required=True, metavar="MEDIA:TRACK")
    p.add_argument("--reason", required=True, help="why (recorded in the access log)")
    _add_key_args(p)


def _add_access_log(sub) -> None:
    """`access-log` (show, verify) and `log-key` (the auditor's key that lets verify tell re-signed or cut rows)."""
    p = sub.add_parser("access-log", aliases=["audit-log"],
                       help="show or verify the archive's access log (needs the key to verify; audit-log: the old name)")
    p.add_argument("archive")
    _add_state_arg(p)
    p.add_argument("--verify", action="store_true")
    p.add_argument("--log-key", default=None, metavar="FILE",
                   help="verify with the auditor's log key (from `faceveil log-key`; implies --verify): tells rows "
                        "re-signed or cut by a key holder; the master key is then optional")
    p.add_argument("--tail", type=int, default=20)
    _add_key_args(p)
    p = sub.add_parser("log-key", help="set up the access log's auditor key (forward-secure tags a key holder cannot "
                                       "forge) and write it to OUTFILE (0600; needs the master key)")
    p.add_argument("archive")
    p.add_argument("out", metavar="OUTFILE", help="where the log key goes (refused if it exists): give it to the auditor")
    _add_state_arg(p)
    p.add_argument("--reason", default="log key set up", help="why (recorded in the access log)")
    _add_key_args(p)


def _add_publish(sub) -> None:
    from faceveil.cli.publish import add_arguments

    add_arguments(sub.add_parser("publish", help="publish a face dataset with every identity replaced (folder or s3://)"))


def _add_review(sub) -> None:
    from faceveil.cli.review import add_arguments

    add_arguments(sub.add_parser("review", help="review what the leak gate withheld on a local page (127.0.0.1, "
                                                "one-time token): add a missed face, release or keep, all logged"))


def _add_sample(sub) -> None:
    p = sub.add_parser("sample", help="write the built-in sample archive (videos with audio, photos)")
    p.add_argument("dest")


def _add_serve(sub) -> None:
    p = sub.add_parser("serve", help="run the scheduled deployments: a Prefect server (or $PREFECT_API_URL's), "
                                     "the work pool, the deployments of deployments/prefect.yaml and a worker")
    p.add_argument("--config", default=None, metavar="FILE",
                   help="the archive's config file (TOML) the deployments run on (default: $FACEVEIL_CONFIG)")
    p.add_argument("--port", type=int, default=4200, help="the Prefect server's port on 127.0.0.1 (default 4200)")
    p.add_argument("--prefect-file", default=None, metavar="FILE",
                   help="the deployments (default: deployments/prefect.yaml beside the faceveil package)")
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
    parser = argparse.ArgumentParser(prog="faceveil", description="Anonymize faces in video archives and face datasets.")
    sub = parser.add_subparsers(dest="command", required=True)
    with_config = any(a == "--config" or a.startswith("--config=") for a in (argv or ()))
    _add_anonymize(sub, "?" if with_config else None)
    _add_anonymize(sub, "?" if with_config else None, name="pulse")
    _add_keys(sub)
    _add_sample(sub)
    _add_report(sub)
    _add_serve(sub)
    _add_publish(sub)
    _add_review(sub)
    return parser
