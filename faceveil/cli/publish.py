"""`faceveil publish SRC DEST`: a face dataset published by identity replacement (flows/publish.py)."""

from __future__ import annotations

import json

from faceveil.cli.exits import EXIT_MEDIA_FAILED, EXIT_OK


def add_arguments(p) -> None:
    p.add_argument("src", help="source folder of photos, or a Parquet table of images (NAME.parquet); local or s3://")
    p.add_argument("dest", help="destination folder or s3://bucket/prefix (a table is published as DEST/NAME.parquet)")
    p.add_argument(
        "--image-column",
        default=None,
        metavar="NAME",
        help="a Parquet table's column of image bytes (binary, or a struct {bytes, path}); default: the only one",
    )
    p.add_argument("--generator", default="dcgan-digiface", help="dcgan-digiface | stylegan2 (default: dcgan-digiface)")
    p.add_argument("--checkpoint", default=None, metavar="PATH", help="stylegan2: a converted .pt checkpoint")
    p.add_argument(
        "--checkpoint-sha256",
        default=None,
        metavar="HEX",
        help="the checkpoint's expected SHA-256 (required with --checkpoint)",
    )
    p.add_argument(
        "--id-margin",
        type=float,
        default=None,
        metavar="COSINE",
        help="a surrogate's identity cosine to the original must stay below this (default 0.85; dlib's same-person threshold is 0.92)",
    )
    p.add_argument(
        "--max-over-margin",
        type=float,
        default=0.0,
        metavar="PERCENT",
        help="the contract lets this share of faces keep an identity cosine at or above the margin (default 0: none)",
    )
    p.add_argument("--seed", type=int, default=None, help="seed of the generated faces' pool (default 0)")
    p.add_argument(
        "--per-face",
        dest="per_person",
        action="store_false",
        help="a surrogate per face (default: one per person: the faces are grouped by identity, and each "
        "person seen in several photos keeps one fake identity across the dataset)",
    )
    p.add_argument("--workers", type=int, default=None, help="local Dask workers (default: one per core)")
    p.add_argument(
        "--state",
        default=None,
        metavar="DIR",
        help="the publication's private state root: per-face figures, per-row record, staging, manifests, "
        "reports, MLflow (default: DEST.faceveil-private beside DEST; never inside DEST)",
    )
    p.add_argument(
        "--mlflow-uri", default=None, help="MLflow tracking URI (default: sqlite under the state root's mlflow/)"
    )
    p.add_argument("--json", action="store_true", help="print the result as JSON")


def publish(args) -> int:
    from faceveil.models.generators import GENERATORS

    cls = GENERATORS.get(args.generator)
    if args.checkpoint and not args.checkpoint_sha256:
        raise ValueError("--checkpoint needs --checkpoint-sha256 (the file is verified before it is read)")
    if getattr(cls, "licence", ""):
        print(f"licence: {cls.licence}")
    from faceveil.flows.publish import run_publish

    result = run_publish(
        args.src,
        args.dest,
        generator=args.generator,
        checkpoint=args.checkpoint,
        checkpoint_sha256=args.checkpoint_sha256,
        id_margin=args.id_margin,
        seed=args.seed,
        workers=args.workers,
        tracking_uri=args.mlflow_uri,
        max_over_margin=args.max_over_margin / 100,
        image_column=args.image_column,
        per_person=args.per_person,
        state=args.state,
    )
    if args.json:
        print(json.dumps(result, indent=2, default=str))
    else:
        m, dest = result["metrics"], args.dest.rstrip("/")
        state = result["state"].rstrip("/")

        def pct(v):
            return "n/a" if v is None else f"{100 * v:.1f}%"

        print(
            f"{result['photos']} {'rows' if 'table' in result else 'photos'} published "
            f"({result['photos_without_faces']} without a face, copied unchanged; "
            f"{result['failed']} failed), {m['faces']} face(s) replaced"
        )
        print(
            "methods:   "
            + ", ".join(f"{n} {k}" for k, n in m.get("faces_by_method", {}).items())
            + " (fallback chain; solid: the region filled)"
        )
        print(
            f"figures:   re-identified {pct(m['reid_rate'])} (dlib >= {m['reid_threshold']}), still detected "
            f"{pct(m['still_detected'])}, pose error {m['pose_error_deg'] or float('nan'):.1f} deg, "
            f"skin dE {m['skin_delta_e'] or float('nan'):.1f}, {m['seconds_per_face'] or float('nan'):.2f} s per face"
        )
        if "table" in result:
            c = result["table"]["counts"]
            print(
                f"table:     {dest}/{result['table']['output']}: {result['table']['rows']} rows ({c['replaced']} with faces "
                f"replaced, {c['no_face']} without a face, {c['no_image']} without an image, {c['failed'] + c['withheld']} "
                f"failed: their image bytes are null); per row: {state}/{result['table']['record']}"
            )
            for f in result["table"]["failures"][:10]:
                print(f"  row {f['row']}: {f['reason']}")
        print(f"datasheet: {dest}/{result['paths']['html']} (and .md; published with the dataset)")
        print(
            f"private:   {state}/ (per-face figures {result['paths']['faces']}, manifests, reports: keep apart "
            "from DEST)"
        )
        print(
            f"contracts: {'passed' if result['contracts']['success'] else 'FAILED: ' + '; '.join(result['contracts']['failures'])}"
        )
        print(f"licence:   {result['generator']['licence']}")
    return EXIT_MEDIA_FAILED if result["failed"] or not result["contracts"]["success"] else EXIT_OK
