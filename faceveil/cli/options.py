"""The options several commands share (state root, keys, cluster, checks, leak gate) and those of
`anonymize` and `pulse`.
`add_anonymize` is over 60 lines: anonymize's flags, one add_argument each, with their help."""

from __future__ import annotations

import argparse


def add_anonymize(sub, paths: str | None = None, name: str = "anonymize") -> None:
    """`anonymize`, or `pulse` (the same options; --method keep --pulse scrub by default)."""
    pulse = name == "pulse"
    p = sub.add_parser(
        name,
        help="remove the pulse (rPPG) signal from the visible faces of an archive "
        "(= anonymize --method keep --pulse scrub)"
        if pulse
        else "anonymize every face of an archive (folder or s3://)",
    )
    p.add_argument(
        "src", nargs=paths, help="source folder or s3://bucket/prefix (with --config: optional, `src` there)"
    )
    p.add_argument(
        "dest", nargs=paths, help="destination folder or s3://bucket/prefix (with --config: optional, `dest` there)"
    )
    p.add_argument(
        "--config",
        default=None,
        metavar="FILE",
        help="settings from a TOML file (AnonymizeConfig's field names; the key by reference in a [key] "
        "table); flags given here override it",
    )
    p.add_argument(
        "--method",
        default="keep" if pulse else "mosaic",
        help="solid | blur | mosaic | scramble (keyed, needs --key) | replace | keep (faces left visible: "
        f"only --pulse edits them) (default: {'keep' if pulse else 'mosaic'})",
    )
    p.add_argument(
        "--pulse",
        default="scrub" if pulse else None,
        metavar="scrub|target:BPM",
        help="edit the heart-rate (rPPG) signal in the skin of visible faces (--method keep or replace): "
        "scrub = no periodic signal in 0.7-4 Hz; target:BPM = estimators read BPM instead"
        + (" (default: scrub)" if pulse else ""),
    )
    add_state_arg(p)
    p.add_argument(
        "--reversible",
        action="store_true",
        help="seal every original face region in the state root's vault/ and index each track's identity (needs a key)",
    )
    p.add_argument("--no-index", action="store_true", help="with --reversible: no identity index")
    add_key_args(p)
    p.add_argument("--detector", default="centerface", help="centerface | dlib-hog (default: centerface)")
    p.add_argument("--threshold", type=float, default=None, help="detector score threshold (default: the detector's)")
    p.add_argument(
        "--precision",
        default="auto",
        choices=["auto", "fp32", "bf16", "int8"],
        help="centerface's arithmetic: auto (default: bf16 where the CPU has it natively, else fp32), fp32 "
        "(as shipped), bf16 (OpenVINO; 2.5x faster than fp32 on CPUs with AVX512-BF16/AMX, scores "
        "shifted to keep fp32's faces) or int8 (derived: half the CPU time, but it misses about half "
        "the faces fp32 finds in night footage)",
    )
    p.add_argument("--min-size", type=float, default=0.0, help="ignore faces smaller than this many pixels")
    p.add_argument("--scale", type=float, default=1.0, help="detector inference scale (0.5 = half resolution)")
    p.add_argument(
        "--detect-fps",
        type=float,
        default=7.5,
        help="least video frames per second the detector looks at; the tracker covers the rest (default: 7.5)",
    )
    p.add_argument(
        "--detect-mpx-per-s",
        type=float,
        default=6.0,
        help="detector budget: every frame is looked at while "
        "this costs at most N megapixels per second of video (default: 6)",
    )
    p.add_argument("--detect-every", type=int, default=None, help="run the detector on every N-th video frame instead")
    p.add_argument(
        "--second-look",
        type=float,
        default=0.5,
        metavar="SCALE",
        help="look again at each anonymized frame with faces, at this detector scale, and mask what is found then (0 = off; default 0.5)",
    )
    p.add_argument(
        "--no-track", dest="track", action="store_false", help="no tracking: detect on every frame, no gap filling"
    )
    p.add_argument("--mask", dest="mask_shape", default="box", choices=["box", "ellipse"])
    p.add_argument(
        "--scope",
        default="face",
        choices=["face", "head", "person"],
        help="what solid, blur and mosaic cover: the face region (default), the head with its hair, or "
        "the person's silhouette (both segmented around each face; the whole extent if the "
        "segmentation model is missing)",
    )
    p.add_argument("--pad", type=float, default=0.4, help="mask margin as a fraction of face size")
    p.add_argument(
        "--max-gap", type=int, default=10, help="frames a face may be missed inside a track and still be covered"
    )
    p.add_argument("--lossless", action="store_true", help="lossless output (FFV1 in MKV for video, lossless images)")
    p.add_argument("--crf", type=int, default=18, help="x264 quality (lower is better)")
    p.add_argument("--preset", default="veryfast", help="x264 preset")
    add_cluster_args(p)
    p.add_argument(
        "--gpu-workers",
        action="store_true",
        help="run detection, anonymizing and encoding only on Dask workers started with "
        "`--resources GPU=1` (with --dask-address; without such workers those tasks never start)",
    )
    add_check_args(p)
    add_gate_args(p)
    p.add_argument("--dry-run", action="store_true", help="print the plan and exit")
    p.add_argument("--json", action="store_true", help="print the run summary as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--verbose", action="store_true", help="show Prefect and Dask logs")


def add_state_arg(p) -> None:
    p.add_argument(
        "--state",
        default=None,
        metavar="DIR",
        help="the archive's private state root: manifests, vault, identity index, access log, quarantine, "
        "reports, MLflow (folder or s3://; default: DEST.faceveil-private beside DEST; never inside DEST)",
    )


def add_key_args(p) -> None:
    p.add_argument("--key", default=None, help="key file (from `faceveil keygen`); default: $FACEVEIL_KEY")
    p.add_argument(
        "--passphrase",
        action="store_true",
        help="derive the key from a passphrase (Argon2id): $FACEVEIL_PASSPHRASE, else asked for",
    )


def add_cluster_args(p) -> None:
    g = p.add_mutually_exclusive_group()
    g.add_argument("--workers", type=int, default=None, help="local Dask workers (default: one per core)")
    g.add_argument(
        "--dask-address",
        default=None,
        help="an existing Dask scheduler, e.g. tls://host:8786 (restore "
        "refuses a plain tcp:// one: it sends data keys)",
    )
    p.add_argument(
        "--dask-tls-ca",
        default=None,
        metavar="FILE",
        help="with a tls:// --dask-address: the cluster's CA "
        "certificate (default: Dask's config distributed.comm.tls.ca-file)",
    )
    p.add_argument(
        "--dask-tls-cert",
        default=None,
        metavar="FILE",
        help="with a tls:// --dask-address: this client's "
        "certificate, signed by that CA (default: distributed.comm.tls.client.cert)",
    )
    p.add_argument(
        "--dask-tls-key",
        default=None,
        metavar="FILE",
        help="with a tls:// --dask-address: the certificate's "
        "private key, unless the certificate file holds it (default: distributed.comm.tls.client.key)",
    )


def add_check_args(p) -> None:
    p.add_argument(
        "--check-every",
        type=float,
        default=4.0,
        metavar="SECONDS",
        help="check one output frame per this many seconds of video (at most --check-frames per video) for leaks, "
        "re-identification and quality (default 4; each check costs ~0.5 s of CPU at 720p; 0 = no "
        "checks, and the data contract then does not ask for them)",
    )
    p.add_argument(
        "--audit-every", dest="check_every", type=float, default=argparse.SUPPRESS, help=argparse.SUPPRESS
    )  # the old name
    p.add_argument(
        "--check-frames",
        type=int,
        default=30,
        metavar="N",
        help="at most N checked frames per video (default 30); more checked faces give a tighter bound on "
        "the leak rate (the report's 95%% bound)",
    )
    p.add_argument(
        "--mlflow-uri",
        default=None,
        help="MLflow tracking URI (default: $FACEVEIL_MLFLOW_URI, else sqlite under the state root's mlflow/)",
    )
    p.add_argument(
        "--mlflow-artifacts",
        default=None,
        metavar="URI",
        help="MLflow's artifact root, e.g. s3://bucket/prefix (default: $FACEVEIL_MLFLOW_ARTIFACTS, else "
        "beside the store; S3 endpoint: $MLFLOW_S3_ENDPOINT_URL, else $FACEVEIL_S3_ENDPOINT)",
    )


def add_gate_args(p) -> None:
    p.add_argument(
        "--max-leak",
        type=float,
        default=0.0,
        metavar="PERCENT",
        help="the leak gate withholds a media when its checked frames show more unmasked faces than this "
        "share of their faces (default 0: any unmasked face); withheld outputs go to "
        "the state root's quarantine/, never the public tree, and the run exits 1 (100: the gate is off)",
    )
    p.add_argument(
        "--no-recheck",
        dest="recheck",
        action="store_false",
        help="withhold a media that leaked at once (default: anonymize it once more, detecting twice as "
        "often, down to below the leak gate's thresholds and with the gate's other detector family "
        "beside the main one, and check again)",
    )
