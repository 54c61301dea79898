"""Every flow run as an MLflow run: params (settings, models and weight hashes, code version),
metrics (privacy, utility, counts), artifacts (the run's report, plots, manifest summary). The store is
a sqlite database under the archive's state root (mlflow/) when it is local (for s3://, one under
$FACEVEIL_HOME, default ~/.faceveil), or any tracking URI ($FACEVEIL_MLFLOW_URI or the setting). The
artifacts go beside a local store, or to an artifact root given (the mlflow_artifacts setting,
$FACEVEIL_MLFLOW_ARTIFACTS), e.g. s3://bucket/prefix (boto3's credentials from the AWS environment;
the endpoint $MLFLOW_S3_ENDPOINT_URL, else $FACEVEIL_S3_ENDPOINT). An experiment keeps the artifact
root it was created with: runs for another root go to the experiment "faceveil (ROOT)".
Only what the report holds is logged: no face pixels but anonymized thumbnails, no key.
`log_run` is over 60 lines: one MLflow run created, filled (tags, params, metrics, artifacts) and
terminated under one lock."""

from __future__ import annotations

import json
import math
import os
import tempfile
import threading
from pathlib import Path

from faceveil.atomic import replaced_atomically
from faceveil.home import home as faceveil_home
from faceveil.storage.paths import Location

EXPERIMENT = "faceveil"
# Held by every use of mlflow here (import, store, logging): two threads importing parts of mlflow
# at once (the validation preloader and a run's last step; mlflow imports more modules lazily on
# first use) leave its protobuf descriptors half-built ("Depends on file 'databricks.proto'").
_LOCK = threading.RLock()


def load_mlflow():
    """The `mlflow` module, imported whole, once, under the module's lock."""
    with _LOCK:
        import mlflow
        import mlflow.entities  # noqa: F401  (what log_run needs, imported under the same lock)
        from mlflow import MlflowClient  # noqa: F401
    return mlflow


def store_for(state: Location, uri: str | None = None, artifacts: str | None = None) -> tuple[str, str | None]:
    """(tracking URI, artifact root of its experiment; None: the tracking server's default) of the
    archive whose private state root is `state`."""
    uri = uri or os.environ.get("FACEVEIL_MLFLOW_URI")
    artifacts = artifacts or os.environ.get("FACEVEIL_MLFLOW_ARTIFACTS") or None
    if uri:
        return uri, artifacts
    home = faceveil_home()
    root = Path(state.path("mlflow")) if state.is_local else home / "mlflow"
    root.mkdir(parents=True, exist_ok=True)
    artifacts = artifacts or (root / "artifacts").as_uri()
    seed_sqlite(root / "mlflow.db", home, artifacts)
    return f"sqlite:///{root / 'mlflow.db'}", artifacts


def seed_sqlite(db: Path, home: Path, artifacts: str) -> None:
    """A new local store starts as a copy of an empty, migrated one kept per MLflow version under
    $FACEVEIL_HOME/cache (creating the tables takes MLflow ~4 s; copying, milliseconds); its Default
    experiment's artifacts point at `artifacts`. An existing `db` is never touched."""
    if db.exists():
        return
    import contextlib
    import shutil
    import sqlite3
    from importlib.metadata import version

    template = home / "cache" / f"mlflow-{version('mlflow')}.db"
    if not template.exists():  # a process beside this one sees the whole template or none
        with replaced_atomically(template) as tmp, _LOCK:
            load_mlflow().MlflowClient(tracking_uri=f"sqlite:///{tmp}").search_experiments()
    fd, tmp = tempfile.mkstemp(dir=db.parent, suffix=".db")
    os.close(fd)
    try:
        shutil.copyfile(template, tmp)
        with contextlib.closing(sqlite3.connect(tmp)) as con, con:
            con.execute(
                "UPDATE experiments SET artifact_location = ? WHERE experiment_id = 0", (f"{artifacts.rstrip('/')}/0",)
            )
        with contextlib.suppress(FileExistsError):  # created meanwhile by another process: that one stays
            os.link(tmp, db)
    finally:
        os.unlink(tmp)


def open_store(uri: str, artifacts: str | None, experiment: str = EXPERIMENT):
    """(client, experiment id, experiment name): creating the database (migrations take seconds)
    and the experiment once. An existing experiment with another artifact root than `artifacts`
    is not used: its runs would put their artifacts there; the runs go to "EXPERIMENT (ROOT)"."""
    from faceveil.offline import set_offline_env

    set_offline_env()
    if (artifacts or "").startswith("s3://") and os.environ.get("FACEVEIL_S3_ENDPOINT"):
        os.environ.setdefault("MLFLOW_S3_ENDPOINT_URL", os.environ["FACEVEIL_S3_ENDPOINT"])
    import logging

    with _LOCK:  # the preloading thread and the run's last step may both get here first
        client = load_mlflow().MlflowClient(tracking_uri=uri)
        logging.getLogger("alembic").setLevel(logging.WARNING)
        logging.getLogger("mlflow.store.db.utils").setLevel(logging.WARNING)
        for name in (experiment, f"{experiment} ({artifacts})"):
            exp = client.get_experiment_by_name(name)
            if exp is None:
                try:
                    return client, client.create_experiment(name, artifact_location=artifacts), name
                except Exception:  # created meanwhile by another process on the same store
                    exp = client.get_experiment_by_name(name)
                    if exp is None:
                        raise
            if artifacts is None or exp.artifact_location.rstrip("/") == artifacts.rstrip("/"):
                return client, exp.experiment_id, name
        raise ValueError(
            f"MLflow experiment {name!r} in {uri} keeps its artifacts at {exp.artifact_location}, not {artifacts}"
        )


def flatten(prefix: str, value, out: dict) -> dict:
    """Nested dicts as 'a.b.c' keys."""
    if isinstance(value, dict):
        for k, v in value.items():
            flatten(f"{prefix}.{k}" if prefix else str(k), v, out)
    else:
        out[prefix] = value
    return out


def _metric_value(v) -> float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    return float(v) if not math.isnan(v) else None


def log_run(report: dict, artifacts, uri: str, artifact_location: str | None = None) -> dict:
    """Logs one finished flow run and sets report['mlflow'] = {'tracking_uri', 'experiment', 'run_id'}.
    `artifacts`: file name -> bytes, or a function of the report (with its 'mlflow' part) giving them."""
    with _LOCK:
        entities = load_mlflow().entities
        Metric, Param, RunTag = entities.Metric, entities.Param, entities.RunTag
        client, exp_id, experiment = open_store(uri, artifact_location)
        head = report.get("access_log_head") or {}  # the access log's head, kept here outside the log too
        run = client.create_run(
            exp_id,
            run_name=report["run_id"],
            tags={
                "faceveil.run_id": report["run_id"],
                "faceveil.flow": report["flow"],
                "faceveil.status": report["status"],
                **({"faceveil.access_log_head": f"seq {head['seq']} mac {head['mac']}"} if head.get("mac") else {}),
            },
        )
        rid = run.info.run_id
        report["mlflow"] = {
            "tracking_uri": uri,
            "experiment": experiment,
            "run_id": rid,
            "artifacts": run.info.artifact_uri,
        }
        params = flatten(
            "",
            {
                "settings": report.get("settings", {}),
                "models": {
                    m["role"]: f"{m['name']} {m.get('weights') or ''}".strip() for m in report.get("models", [])
                },
                "code_version": report.get("code_version"),
                "faceveil_version": report.get("faceveil_version"),
                "src": report.get("src"),
                "dest": report.get("dest"),
            },
            {},
        )
        metrics = flatten(
            "",
            {
                "counts": report.get("counts", {}),
                "privacy": report.get("privacy", {}),
                "utility": report.get("utility", {}),
                "seconds": report.get("seconds"),
                "contracts": {"failed": sum(not r["success"] for r in report.get("contracts", {}).get("results", []))},
            },
            {},
        )
        metric_rows = [
            Metric(k, v, 0, 0) for k, v in ((k, _metric_value(v)) for k, v in metrics.items()) if v is not None
        ]
        param_rows = [
            Param(k, json.dumps(v) if not isinstance(v, str) else v) for k, v in params.items() if v is not None
        ]
        for i in range(0, max(len(param_rows), len(metric_rows)), 100):  # mlflow takes at most 100 params per batch
            client.log_batch(rid, metrics=metric_rows[i : i + 100], params=param_rows[i : i + 100])
        client.log_batch(
            rid,
            tags=[RunTag("faceveil.contracts", "passed" if report.get("contracts", {}).get("success") else "failed")],
        )
        files = artifacts(report) if callable(artifacts) else artifacts
        with tempfile.TemporaryDirectory(prefix="faceveil-mlflow-") as tmp:
            for name, data in files.items():
                p = Path(tmp) / name
                p.write_bytes(data)
                client.log_artifact(rid, str(p))
        client.set_terminated(rid, "FINISHED" if report["status"] == "ok" else "FAILED")
        return report["mlflow"]
