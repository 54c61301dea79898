"""Where flows run: telemetry off, one local Prefect API server per run unless one is configured,
and the Dask task runner (a local cluster, or an existing scheduler's address)."""
from __future__ import annotations

import contextlib
import os

OFFLINE_ENV = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "DO_NOT_TRACK": "true",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "GX_ANALYTICS_ENABLED": "false",
    "AWS_EC2_METADATA_DISABLED": "true",
}


def set_offline_env() -> None:
    for k, v in OFFLINE_ENV.items():
        os.environ.setdefault(k, v)


@contextlib.contextmanager
def prefect_api():
    """Yields the Prefect API URL: PREFECT_API_URL when set, else a temporary server on
    127.0.0.1 started here (one for the whole run, so Dask workers do not each start their own)."""
    set_offline_env()
    if os.environ.get("PREFECT_API_URL"):
        yield os.environ["PREFECT_API_URL"]
        return
    from prefect.server.api.server import SubprocessASGIServer
    from prefect.settings import PREFECT_API_URL, temporary_settings

    server = SubprocessASGIServer()
    server.start(timeout=180)
    os.environ["PREFECT_API_URL"] = server.api_url  # inherited by spawned Dask workers
    try:
        with temporary_settings(updates={PREFECT_API_URL: server.api_url}):
            yield server.api_url
    finally:
        os.environ.pop("PREFECT_API_URL", None)
        server.stop()


def dask_task_runner(n_workers: int, threads_per_worker: int = 1, address: str | None = None):
    """A DaskTaskRunner: on `address` when given, else on a LocalCluster of worker processes."""
    import logging

    from prefect_dask import DaskTaskRunner

    if os.environ.get("PREFECT_LOGGING_LEVEL", "").upper() in ("WARNING", "ERROR", "CRITICAL"):
        logging.getLogger("distributed").setLevel(logging.WARNING)
    if address:
        return DaskTaskRunner(address=address)
    return DaskTaskRunner(cluster_class="distributed.LocalCluster", cluster_kwargs={
        "n_workers": n_workers, "threads_per_worker": threads_per_worker, "processes": True,
        "dashboard_address": None, "silence_logs": 40})
