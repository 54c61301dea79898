"""Per published photo: each face measured, original against output, at the boxes and landmarks the
anonymize run recorded (its detections manifest): identity cosine (dlib), pose error (CenterFace's
landmarks on the output against the original's), skin colour difference (CIEDE2000), CenterFace's
score of the new face. Also small crops of the replaced faces (never an original) for the datasheet's
contact sheet.
`measure_faces` is over 60 lines: one pass over a photo's faces, whose row lists every column, one a
line; `write_publication` too: the datasheet's info and the MLflow report are two dict literals of every
published figure, one a line."""

from __future__ import annotations

import io

import numpy as np

from faceveil.config import AnonymizeConfig
from faceveil.models.detections import Detections, iou_matrix
from faceveil.models.detectors import DetectorSettings
from faceveil.pipeline.places import locations, scratch, state_of
from faceveil.pipeline.toolkit import loaded_anonymizer, loaded_detector, loaded_embedder
from faceveil.storage.state import public_location, state_location
from faceveil.storage import manifests
from faceveil.storage.media import read_image

FACE_COLUMNS = (
    "media",
    "media_id",
    "face_index",
    "surrogate_id",
    "method",
    "identity_cosine",
    "pose_error_deg",
    "skin_delta_e",
    "detector_score",
    "face_size",
    "sharpness",
    "seconds",
)
DETECTED_AT = 0.2  # CenterFace's default threshold: the share of new faces it still finds at it
CROP = 96  # side of a contact-sheet crop, pixels


def _crop(rgb: np.ndarray, box) -> np.ndarray:
    from faceveil.validation.realism import face_crop

    return face_crop(rgb, box, CROP)


def _references(config: AnonymizeConfig, orig: np.ndarray, dets: Detections, n: int) -> dict:
    """{"blur": ..., "solid": ...}: dlib vectors of the first `n` faces of the original anonymized by
    each of datasheet.REFERENCES instead (realism's references); {} when n is 0."""
    from faceveil.models.anonymizers import create_anonymizer
    from faceveil.validation.datasheet import REFERENCES

    sub = dets[np.arange(min(n, len(dets)))]
    if not len(sub):
        return {}
    embedder = loaded_embedder("dlib-resnet")
    return {
        k: embedder.embed(create_anonymizer(k, config.settings.mask).apply(orig.copy(), sub), sub) for k in REFERENCES
    }


def measure_faces(
    config: AnonymizeConfig, rel: str, media_id: str, seconds: float, crops: int = 0, references: int = 0
) -> dict:
    """{"rows": one dict per face (FACE_COLUMNS), "crops": up to `crops` uint8 crops of replaced faces,
    cut from the published output, "vectors": the faces' dlib vectors, "original" and "replaced", and
    for the first `references` faces (`_references`) blurred and filled}. A photo without faces gives
    no rows."""
    from faceveil.models.face_attributes import delta_e2000, head_pose, skin_lab
    from faceveil.models.replace import ReplaceSettings, track_seed
    from faceveil.validation.realism import sharpness_ratio

    (src, dest), state = locations(config), state_of(config)
    det = manifests.read_part(state, "detections", media_id)
    if det is None or not det.num_rows:
        return {"rows": [], "crops": []}
    d = det.to_pandas()
    boxes = d[["x1", "y1", "x2", "y2"]].to_numpy(np.float32)
    lms = np.stack([np.asarray(v, np.float32).reshape(5, 2) for v in d["landmarks"]])
    tracks = d["track_id"].to_numpy(np.int64)
    made = manifests.read_part(state, "surrogates", media_id)  # which surrogate each track got (the image task)
    made = {r["track_id"]: r for r in made.to_pylist()} if made is not None else {}
    with src.local_file(rel, scratch(config)) as a, dest.local_file(rel, scratch(config)) as b:
        orig = read_image(a, max_pixels=config.encoding.max_pixels)[0]
        out = read_image(b, max_pixels=config.encoding.max_pixels)[0]
    dets = Detections(boxes, d["score"].to_numpy(np.float32), lms, tracks)
    embedder = loaded_embedder("dlib-resnet")
    vectors = {"original": embedder.embed(orig, dets), "replaced": embedder.embed(out, dets)}
    cos = np.sum(vectors["original"] * vectors["replaced"], axis=1)
    found = loaded_detector("centerface", DetectorSettings(threshold=0.05)).detect(out)
    iou = iou_matrix(boxes, found.boxes) if len(found) else np.zeros((len(boxes), 0))
    pool_seed = dict(config.masking.replace_options).get("pool_seed") or ReplaceSettings().pool_seed
    rows, sheet = [], []
    for j in range(len(boxes)):
        k = int(np.argmax(iou[j])) if iou.shape[1] else -1
        hit = k >= 0 and iou[j, k] >= 0.3
        score = float(found.scores[k]) if hit else 0.0
        lm = lms[j]
        if np.isnan(lm).any() or not hit or np.isnan(found.landmarks[k]).any():
            pose = float("nan") if np.isnan(lm).any() else 90.0  # not found again: the worst pose error
        else:
            pose = float(np.abs(head_pose(found.landmarks[k]) - head_pose(lm)).mean())
        de = float(delta_e2000(skin_lab(out, lm), skin_lab(orig, lm))) if not np.isnan(lm).any() else float("nan")
        key = int(tracks[j]) if tracks[j] >= 0 else ("untracked", *np.round(boxes[j]).astype(int).tolist())
        mine = made.get(int(tracks[j]), {})
        rows.append(
            {
                "media": rel,
                "media_id": media_id,
                "face_index": j,
                "method": mine.get("method"),
                "surrogate_id": mine.get("surrogate_id") or f"{track_seed(pool_seed, media_id, key):016x}",
                "identity_cosine": float(cos[j]),
                "pose_error_deg": pose,
                "skin_delta_e": de,
                "detector_score": score,
                "face_size": float(max(boxes[j, 2] - boxes[j, 0], boxes[j, 3] - boxes[j, 1])),
                "sharpness": sharpness_ratio(out, lm),
                "seconds": seconds / len(boxes),
            }
        )
        if len(sheet) < crops and mine.get("method") != "solid":  # replaced faces only
            sheet.append(_crop(out, boxes[j]))
    return {"rows": rows, "crops": sheet, "vectors": {**vectors, **_references(config, orig, dets, references)}}


def faces_by_method(faces) -> dict:
    """{step of the fallback chain: faces it handled}, in the chain's order ("unrecorded": rows of runs
    before the chain, only when there are any)."""
    from faceveil.models.fallback import FALLBACKS

    counts = {m: int((faces["method"] == m).sum()) for m in FALLBACKS}
    missing = int(faces["method"].isna().sum())
    return {**counts, **({"unrecorded": missing} if missing else {})}


def face_figures(faces, margin: float) -> dict:
    """datasheet.publication_metrics over the faces with a face put back (not "solid": those show no
    face), and `faces_by_method` over every face."""
    from faceveil.models.embedders.dlib_resnet import DlibResNet
    from faceveil.validation.datasheet import publication_metrics

    shown = faces[faces["method"] != "solid"]
    metrics = publication_metrics(shown, DlibResNet.same_person_threshold, margin, DETECTED_AT)
    return {**metrics, "faces_by_method": faces_by_method(faces)}


def write_publication(
    config: AnonymizeConfig,
    run_id: str,
    summary: dict,
    measured: list[dict],
    faceless: list[str],
    max_over_margin: float = 0.0,
    table: dict | None = None,
) -> dict:
    """faces.parquet, the data contract on it, the datasheet (Markdown and HTML) and an MLflow run;
    the datasheet's figures and where everything went. `table`: a Parquet table's publication
    (tasks/publish_table.assemble_table's figures): the datasheet then goes to the table's DEST and the
    rest to its state root (the run itself had its staged rows as SRC and the state root's table/out
    as DEST), and rows that never reached the run (no image, not an image) count too. DEST gets the
    datasheet only; faces.parquet, the summary and MLflow stay in the state root."""
    from datetime import datetime, timezone

    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    from faceveil.models.replace_settings import ReplaceSettings
    from faceveil.validation import datasheet, mlflow_log
    from faceveil.validation.contracts import check_published_faces
    from faceveil.version import __version__

    state = state_location(table["state"], config.storage_options) if table else state_of(config)
    dest = public_location(table["dest"] if table else config.dest, state, config.storage_options)
    faces = pd.DataFrame([r for m in measured for r in m["rows"]], columns=list(FACE_COLUMNS))
    buf = io.BytesIO()
    pq.write_table(pa.Table.from_pandas(faces, preserve_index=False), buf)
    state.write_bytes(datasheet.FACES, buf.getvalue())
    margin = dict(config.masking.replace_options).get("id_margin") or ReplaceSettings().id_margin
    metrics = face_figures(faces, margin)
    metrics["realism"] = datasheet.realism_metrics(faces, measured)
    contracts = check_published_faces(faces, margin, max_over_margin) if len(faces) else None
    gen = loaded_anonymizer(config.masking.method, config.settings.mask, config.settings.replace).replacer.generator
    unstaged = table["counts"]["no_image"] + table["unstaged_failed"] if table else 0
    info = {
        "run_id": run_id,
        "src": table["source"] if table else config.src,
        "dest": dest.url,
        "state": state.url,
        "faceveil_version": __version__,
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "photos": summary.get("media", 0) + unstaged,
        "failed": summary.get("failed", 0) + (table["unstaged_failed"] if table else 0),
        "photos_without_faces": len(faceless),
        "without_faces": faceless,
        "metrics": metrics,
        "generator": {"name": gen.name, "weights_id": gen.weights_id, "licence": gen.licence},
        "settings": {
            "id_margin": margin,
            "max_over_margin": max_over_margin,
            **{k: v for k, v in config.masking.replace_options.items() if v is not None},
        },
        "contracts": {
            "success": contracts is None or contracts.success,
            "failures": [] if contracts is None else contracts.failures,
            "results": [] if contracts is None else contracts.results,
        },
    }
    if table:
        info["table"] = table
    png = datasheet.contact_sheet([c for m in measured for c in m["crops"]][: datasheet.SHEET_FACES])
    paths = datasheet.write_datasheet(dest, state, info, png)
    uri, artifacts = mlflow_log.store_for(state, config.tracking_uri, config.mlflow_artifacts)
    report = {
        "run_id": f"publish-{run_id}",
        "flow": "publish_dataset",
        "status": "ok" if info["contracts"]["success"] else "failed",
        "settings": info["settings"],
        "models": [{"role": "generator", "name": gen.name, "weights": gen.weights_id}],
        "faceveil_version": __version__,
        "src": info["src"],
        "dest": info["dest"],
        "privacy": {"reid_rate": metrics["reid_rate"], "over_margin_rate": metrics["over_margin_rate"]},
        "utility": {k: metrics[k] for k in ("still_detected", "pose_error_deg", "skin_delta_e")},
        "counts": {
            "faces": metrics["faces"],
            "photos": info["photos"],
            "without_faces": len(faceless),
            "faces_by_method": metrics["faces_by_method"],
        },
        "seconds": metrics["seconds_per_face"],
        "contracts": info["contracts"],
    }
    files = {
        "datasheet.html": dest.read_bytes(paths["html"]),
        "datasheet.md": dest.read_bytes(paths["markdown"]),
        "faces.parquet": buf.getvalue(),
    }
    info["mlflow"] = mlflow_log.log_run(report, files, uri, artifacts)
    return {
        **info,
        "paths": {
            **paths,
            "faces": datasheet.FACES,
            **({"table": table["output"], "rows": table["record"]} if table else {}),
        },
    }
