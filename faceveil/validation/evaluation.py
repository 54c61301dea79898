"""`faceveil evaluate`'s per-method figures from a run's own manifest and checks tables, the results
as JSON, and one MLflow run per method (through `mlflow_log`)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from faceveil.storage.paths import Location

RUN_TABLES = ("media", "detections", "checks/frames", "checks/faces")


def run_tables(dest: Location, tables=RUN_TABLES) -> dict:
    """The run's manifest and checks tables as DataFrames, by table name."""
    from faceveil.storage.manifests import read_table

    return {t: read_table(dest, t).to_pandas() for t in tables}


def method_figures(t: dict, threshold: float, frames: int, wall: float, flow_seconds: float | None) -> dict:
    """Leak, the run's re-identification check and utility from the checks tables `t` (split images
    / videos when the run held both); speed (`fps`: per wall second of the method's anonymize run;
    `fps_flow`: per second of that flow's own timing)."""
    from faceveil.validation.privacy import summarize

    fr, fa = t["checks/frames"], t["checks/faces"]
    s = summarize(fr.to_dict("records"), fa.to_dict("records"), threshold)
    kinds = dict(zip(t["media"].media_id, t["media"].kind))
    out = {
        "leak": s["leak"],
        "reid_run": s["reid"],
        "utility": s["utility"],
        "frames": frames,
        "seconds": wall,
        "fps": frames / wall if wall > 0 else math.nan,
        "flow_seconds": flow_seconds,
        "fps_flow": frames / flow_seconds if flow_seconds else math.nan,
    }
    present = sorted(set(kinds.values()))
    if len(present) > 1:
        for kind in present:
            ids = {m for m, k in kinds.items() if k == kind}
            out[f"leak_{kind}s"] = summarize(fr[fr.media_id.isin(ids)].to_dict("records"), [], threshold)["leak"]
    return out


def plain(v):
    """JSON-safe: NaN -> None, infinities -> 'inf' / '-inf', numpy scalars -> Python."""
    if isinstance(v, dict):
        return {str(k): plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [plain(x) for x in v]
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None if math.isnan(v) else ("inf" if v > 0 else "-inf")
    return v


def _finite(v) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) else None


def method_report(result: dict, method: str, out: str, models: list[dict]) -> dict:
    """What `mlflow_log.log_run` logs for one method: settings, models, counts, privacy, utility."""
    f = result["methods"][method]
    attack = f.get("reid_attack") or {}
    privacy = {
        "leak_rate": f["leak"]["rate"],
        "leak_threshold": f["leak"]["threshold"],
        "reid_run_rate": f["reid_run"]["rate"],
        "reid_run_mean_cosine": f["reid_run"]["mean_cosine"],
        "reid_attack_rate": attack.get("rate"),
        "reid_attack_direct_rate": attack.get("direct"),
        "reid_attack_parrot_rate": attack.get("parrot"),
        "threshold": result["threshold"],
    }
    for kind in ("images", "videos"):
        if f"leak_{kind}" in f:
            privacy[f"leak_{kind}_rate"] = f[f"leak_{kind}"]["rate"]
    return {
        "run_id": f["evaluate_run_id"],
        "flow": "evaluate",
        "status": "ok" if not f["failed"] else "failed",
        "src": result["data"],
        "dest": str(Path(out) / method),
        "settings": {
            "method": method,
            "data": result["data"],
            "threshold": result["threshold"],
            "anonymize_run_id": f["run_id"],
        },
        "models": models,
        "counts": {
            "media": f["media"],
            "ok": f["ok"],
            "failed": f["failed"],
            "frames": f["frames"],
            "faces": f["faces"],
            "identities": result["n_identities"],
            "probe_faces": result["n_probe_faces"],
            "frames_checked": f["leak"]["frames_checked"],
            "faces_checked": f["reid_run"]["faces_checked"],
        },
        "privacy": {k: _finite(v) for k, v in privacy.items()},
        "utility": {k: _finite(v) for k, v in {**f["utility"], "fps": f["fps"]}.items()},
        "seconds": f["seconds"],
        "contracts": {"success": not f["failed"], "results": []},
    }


def log_evaluation(result: dict, out: str, uri: str | None, models: list[dict], table: str) -> dict:
    """One MLflow run per method, each with the whole `table` and the JSON as artifacts, in OUT's
    store unless `uri` names one. Returns {'tracking_uri', 'experiment', 'runs': {method: run id}}."""
    from faceveil.validation.mlflow_log import log_run, store_for

    uri, artifacts_at = store_for(Location(str(Path(out).expanduser())), uri)
    files = {"evaluate.md": table.encode(), "evaluate.json": json.dumps(plain(result), indent=2).encode()}
    logged = {m: log_run(method_report(result, m, out, models), files, uri, artifacts_at) for m in result["methods"]}
    experiment = next(iter(logged.values()))["experiment"] if logged else None
    return {"tracking_uri": uri, "experiment": experiment, "runs": {m: r["run_id"] for m, r in logged.items()}}
