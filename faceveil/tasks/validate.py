"""The last steps of every flow: data contracts, the run's privacy and utility figures, the run's report
(JSON + self-contained HTML under the state root's reports/) and its MLflow run. A broken contract
fails the run, naming the expectation, after the report is written.
Over 300 lines: the reports of both flows (`anonymize_report`, `restore_report`) and the helpers they
share (figures, header, threshold, access log) read together; `anonymize_report` is over 60 lines: it is
the report's one dict literal, a section a key."""

from __future__ import annotations

import functools
import math
import os
import subprocess

import numpy as np
import pandas as pd

from faceveil.version import __version__
from faceveil.storage import access_log, manifests
from faceveil.storage.paths import Location
from faceveil.validation import privacy
from faceveil.validation.identity import identified
from faceveil.validation.contracts import ContractError, ContractReport
from faceveil.validation.report_thumbnails import thumbnails
from faceveil.validation.review_log import review_actions

ACCESS_LOG_ROWS = 20


@functools.lru_cache(maxsize=1)
def code_version() -> str | None:
    """'git <commit>[+changes]' of the faceveil checkout, or None outside one."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    try:
        sha = subprocess.run(
            ["git", "-C", root, "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", root, "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"git {sha}{'+changes' if dirty else ''}"


def _intervals(frames) -> list[list[int]]:
    """Sorted frame indices as half-open [start, stop) runs."""
    f = np.unique(np.asarray(list(frames), np.int64))
    if not len(f):
        return []
    cuts = np.flatnonzero(np.diff(f) > 1) + 1
    return [[int(run[0]), int(run[-1]) + 1] for run in np.split(f, cuts)]


def coverage(media: pd.DataFrame, det: pd.DataFrame, step_of) -> dict:
    """Per video: frames with a face box, and the gaps the tracker filled (frames the detector looked
    at, `step_of(row)` apart, where it missed a face the track carried through)."""
    out = {}
    for row in media[(media.kind == "video") & (media.status == "ok")].itertuples():
        d = det[det.media_id == row.media_id]
        step = step_of(row)
        looked = (d.frame_index % step == 0) | (d.frame_index == row.frames_in - 1)
        missed = set(d.frame_index[d.filled & looked]) - set(d.frame_index[~d.filled])
        out[row.rel_path] = {
            "n_frames": int(row.frames_in),
            "fps": float(row.fps or 0),
            "detected": _intervals(d.frame_index),
            "filled": _intervals(missed),
            "redacted": [],
        }
    return out


def run_reidentification(embeddings: list[dict], threshold: float) -> dict:
    """The run-level attack: each checked anonymized face searched among every checked original of
    the run; re-identified when its own track's original is the best match at `threshold`. With few
    tracks, luck alone gets far (`chance`): read it beside that."""
    parts = [e for e in embeddings if e and len(e["anonymized"])]
    if not parts:
        return {"faces_checked": 0, "matches": 0, "rate": math.nan, "threshold": threshold}
    labels = np.concatenate(
        [
            [f"{e['media_id']}:{t}" if t >= 0 else f"{e['media_id']}:face{i}" for i, t in enumerate(e["track_ids"])]
            for e in parts
        ]
    )
    orig = np.concatenate([e["original"] for e in parts])
    anon = np.concatenate([e["anonymized"] for e in parts])
    hit = identified(anon, labels, orig, labels, threshold)
    chance = float(np.mean([(labels == x).mean() for x in labels]))  # rank-1 by luck, before the threshold
    return {
        "faces_checked": len(hit),
        "matches": int(hit.sum()),
        "rate": float(hit.mean()),
        "threshold": threshold,
        "identities": len(set(labels)),
        "chance": chance,
    }


def _media_figures(media: pd.DataFrame, frames: pd.DataFrame, faces: pd.DataFrame, threshold: float) -> list[dict]:
    rows = []
    for r in media.itertuples():
        s = privacy.summarize(
            frames[frames.media_id == r.media_id].to_dict("records"),
            faces[faces.media_id == r.media_id].to_dict("records"),
            threshold,
        )
        rows.append(
            {
                "path": r.rel_path,
                "kind": r.kind,
                "method": r.method,
                "status": r.status,
                "reason": r.reason,
                "input_sha256": r.input_sha256,
                "output_path": r.output_path,
                "output_sha256": r.output_sha256,
                "quarantine_path": r.quarantine_path,
                "leak_frames": [int(f) for f in r.leak_frames] if r.leak_frames is not None else [],
                "frames": r.frames_in,
                "faces": r.n_faces,
                "tracks": r.n_tracks,
                "frames_with_faces": r.frames_with_faces,
                "frames_filled": r.frames_filled,
                "frames_redacted": r.frames_redacted,
                "has_audio_in": r.has_audio_in,
                "has_audio_out": r.has_audio_out,
                "leak_rate": s["leak"]["rate"],
                "leak_faces": s["leak"]["faces_found"],
                "leak_faces_checked": s["leak"]["faces_checked"],
                "leak_upper_95": s["leak"]["upper_95"],
                "reid_rate": s["reid"]["rate"],
                "reid_checked": s["reid"]["faces_checked"],
                "background_psnr": s["utility"]["background_psnr"],
                "background_ssim": s["utility"]["background_ssim"],
                "face_ssim": s["utility"]["face_ssim"],
            }
        )
    return rows


def index_embeddings(dest: Location, media_ids, dim: int) -> pd.DataFrame:
    """Norm and dimension of every identity vector the index holds for `media_ids` (sealed rows:
    the dimension their sealed template's size gives, 0 when missing; the norm of the placeholder)."""
    from faceveil.models.template_protection import SealedTemplates
    from faceveil.storage.identity_index import IdentityIndex

    index = IdentityIndex(dest, dim=dim)
    rows = []
    for mid in media_ids:
        t = index.media_rows(mid)
        sealed = t.column("sealed").to_pylist() if "sealed" in t.column_names else [None] * t.num_rows
        for v, s in zip(t.column("vector").to_pylist(), sealed):
            n = len(v) if "sealed" not in t.column_names else (SealedTemplates.dim_of(s) if s else 0)
            rows.append({"media_id": mid, "norm": float(np.linalg.norm(v)), "dim": n, "expected_dim": dim})
    return pd.DataFrame(rows, columns=["media_id", "norm", "dim", "expected_dim"])


def anonymize_report(config, summary: dict, results: list, scratch: str) -> tuple[dict, ContractReport]:
    """The report of an anonymize run (its media only) and its contract report."""
    from faceveil.models.embedders import EMBEDDERS
    from faceveil.validation.contracts import check_manifests

    from faceveil.pipeline.places import locations, state_of

    dest, public = state_of(config), locations(config)[1]
    run_id = summary["run_id"]
    media = manifests.read_table(dest, "media").to_pandas()
    media = media[media.run_id == run_id]
    ids = list(media.media_id)
    frames, faces = (manifests.read_table(dest, t).to_pandas() for t in ("checks/frames", "checks/faces"))
    frames, faces = frames[frames.media_id.isin(ids)], faces[faces.media_id.isin(ids)]
    det = manifests.read_table(dest, "detections").to_pandas()
    det = det[det.media_id.isin(ids)]
    emb_cls = EMBEDDERS.get(config.sealing.embedder)
    threshold = _threshold(dest, config, emb_cls)
    embeddings = (
        index_embeddings(dest, [m for m in ids if config.sealing.index], emb_cls.dim) if config.sealing.index else None
    )
    contracts = check_manifests(
        dest,
        None,
        embeddings,
        checked=config.run_check_every_s > 0,  # the whole archive
        max_leak=config.checks.max_leak,
        public=public,
    )
    figures = privacy.summarize(frames.to_dict("records"), faces.to_dict("records"), threshold)
    figures["reid_attack"] = run_reidentification([getattr(r, "checked_embeddings", None) for r in results], threshold)
    stats = manifests.read_table(dest, "checks/media").to_pandas()
    stats = stats[stats.media_id.isin(ids)]
    weights = media.detector_weights.dropna()
    report = {
        **_header(summary, "anonymize_archive", contracts),
        "settings": summary["settings"]
        | {
            "check_every_s": config.run_check_every_s,
            "check_max_frames": config.checks.check_max_frames,
            "max_leak": config.checks.max_leak,
        },
        "leak_gate": summary["leak_gate"],
        "models": [
            {
                "role": "detector",
                "name": config.detection.detector,
                "weights": weights.iloc[0] if len(weights) else None,
            },
            {"role": "embedder", "name": config.sealing.embedder, "weights": _weights(emb_cls)},
            *_generator(config),
        ],
        "counts": {
            "media": summary["media"],
            "ok": summary["ok"],
            "failed": summary["failed"],
            "already_done": summary["already_done"],
            "frames": summary["frames"],
            "faces": summary["faces"],
            "tracks": int(media.n_tracks.fillna(0).sum()),
            "frames_checked": len(frames),
            "faces_checked": len(faces),
        },
        "media": _media_figures(media, frames, faces, threshold),
        "coverage": coverage(media, det, lambda r: config.settings.frame_step(r.fps, r.width, r.height)),
        "privacy": {
            "leak": figures["leak"],
            "reid": figures["reid"],
            "reid_attack": figures["reid_attack"],
            "identity_stability": privacy.nanmean(stats.identity_stability),
            "surrogate_consistency": privacy.nanmean(stats.surrogate_consistency),
        },
        "utility": figures["utility"],
        "keys": {
            "vault_key_fingerprint": config.sealing.vault_lock.fingerprint if config.sealing.vault_lock else None,
            "reversible": config.sealed,
            "index": bool(config.sealing.index),
        },
        "access_log": _access_log(dest),
        "access_log_head": access_log.head(dest),  # kept outside the log too
        "review": review_actions(dest),
        "thumbnails": thumbnails(public, media, frames, scratch),
        "failures": summary["failures"],
        "not_media": summary["not_media"],
        "pulse": _pulse(dest, media, run_id),
    }
    return report, contracts


def _generator(config) -> list[dict]:
    """The replace method's face generator and its licence (what the replaced faces may be used for)."""
    if config.masking.method != "replace":
        return []
    from faceveil.models.generators import GENERATORS

    name = dict(config.masking.replace_options).get("generator", "dcgan-digiface")
    return [
        {
            "role": "generator",
            "name": name,
            "weights": dict(config.masking.replace_options).get("checkpoint_sha256"),
            "licence": getattr(GENERATORS.get(name), "licence", ""),
        }
    ]


def _pulse(dest: Location, media: pd.DataFrame, run_id: str) -> list[dict]:
    """The pulse edit's figures of this run's media (checks/pulse), per track."""
    from faceveil.validation.pulse_report import pulse_figures

    rows = manifests.read_table(dest, "checks/pulse").to_pandas()
    rows = rows[rows.media_id.isin(list(media.media_id)) & (rows.run_id == run_id)]
    return pulse_figures(rows.to_dict("records"), dict(zip(media.media_id, media.rel_path)))


def restore_report(config, report: dict, contracts: ContractReport) -> dict:
    """The report of a restore run: what was restored or refused, with the key's fingerprint only."""
    media = report["media"]
    return {
        **_header(report, "restore_archive", contracts),
        "src": config.archive,
        "dest": config.out,
        "settings": {"tracks": config.tracks, "media": config.media, "all": config.all, "crf": config.crf},
        "models": [],
        "counts": {
            "media": len(media),
            "ok": report["ok"],
            "partial": report["partial"],
            "failed": report["failed"],
            "regions_restored": sum(m.get("regions_restored") or 0 for m in media),
        },
        "media": [
            {
                "path": m["path"],
                "kind": None,
                "status": m["status"],
                "reason": m["reason"],
                "tracks": len(m.get("tracks") or []),
            }
            for m in media
        ],
        "keys": {"vault_key_fingerprint": report["key_fingerprint"], "reversible": True},
        "access_log": _access_log(config.state_location()),
        "access_log_head": access_log.head(config.state_location()),
        "failures": [{"path": m["path"], "reason": m["reason"]} for m in media if m["status"] != "ok"],
    }


def report_and_log(
    dest: Location,
    report: dict,
    contracts: ContractReport,
    tracking_uri: str | None = None,
    mlflow_artifacts: str | None = None,
) -> dict:
    """Writes the run's report into the state root `dest`, logs the MLflow run, then fails the run
    if a contract broke."""
    from faceveil.validation import mlflow_log
    from faceveil.validation.report import plots, write_report

    uri, artifacts = mlflow_log.store_for(dest, tracking_uri, mlflow_artifacts)

    def rendered(a: dict) -> dict[str, bytes]:
        paths = write_report(dest, a)
        files = {"report.html": dest.read_bytes(paths["html"]), "report.json": dest.read_bytes(paths["json"])}
        files.update({f"{name}.png": png for name, png in plots(a).items()})
        return files

    mlflow_log.log_run(report, rendered, uri, artifacts)
    if not contracts.success:
        raise ContractError(f"run {report['run_id']}: data contract broken: " + "; ".join(contracts.failures))
    return report


def _header(summary: dict, flow: str, contracts: ContractReport) -> dict:
    status = "failed" if not contracts.success or summary.get("failed") else "ok"
    return {
        "run_id": summary["run_id"],
        "flow": flow,
        "status": status,
        "started_at": summary.get("started_at"),
        "finished_at": summary.get("finished_at"),
        "seconds": summary.get("seconds"),
        "faceveil_version": __version__,
        "code_version": code_version(),
        "src": summary.get("src"),
        "dest": summary.get("dest"),
        "contracts": {"success": contracts.success, "results": contracts.results},
    }


def _threshold(dest: Location, config, emb_cls) -> float:
    """The index's calibrated match threshold when it has one, else the embedder's."""
    if config.sealing.index:
        from faceveil.storage.identity_index import IdentityIndex

        meta = IdentityIndex(dest, dim=emb_cls.dim).meta() or {}
        if meta.get("threshold") is not None:
            return float(meta["threshold"])
    return float(emb_cls.same_person_threshold)


def _weights(emb_cls) -> str | None:
    try:
        return emb_cls().weights_id
    except Exception:
        return None


def _access_log(loc: Location) -> list[dict]:
    try:
        rows = access_log.tail(loc, ACCESS_LOG_ROWS)
    except Exception as e:  # an unreadable log is shown, not hidden
        return [{"seq": None, "action": "unreadable", "reason": str(e)}]
    keep = ("seq", "time", "actor", "action", "reason", "matched", "key_fingerprint")
    return [{k: r.get(k) for k in keep} for r in rows]
