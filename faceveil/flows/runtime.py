"""Where flows run: telemetry off, one local Prefect API server per run unless one is configured,
and the Dask task runner (a local cluster, or an existing scheduler's address)."""
from __future__ import annotations

import contextlib
import os
import threading

from faceveil.offline import set_offline_env


@contextlib.contextmanager
def flow_runtime(n_workers: int, threads_per_worker: int = 1, address: str | None = None, warm=None):
    """Yields a DaskTaskRunner on `address`, or on a local cluster of worker processes started here.
    Unless PREFECT_API_URL is set, one temporary Prefect API server on 127.0.0.1 serves the run (so
    workers do not each start their own); it boots while the cluster starts and `warm` runs once
    on every local worker (imports, model loading)."""
    set_offline_env()
    server, booting, boot_error = None, None, []
    if not os.environ.get("PREFECT_API_URL"):
        from prefect.server.api.server import SubprocessASGIServer

        server = SubprocessASGIServer()
        server.port = server.find_available_port()
        os.environ["PREFECT_API_URL"] = server.api_url  # inherited by the worker processes

        def boot():
            try:
                server.start(timeout=180)
            except Exception as e:  # re-raised in the caller's thread
                boot_error.append(e)

        booting = threading.Thread(target=boot, name="prefect-server-boot", daemon=True)
        booting.start()
    cluster = client = None
    try:
        from prefect_dask import DaskTaskRunner

        if not address:
            cluster, client = _local_cluster(n_workers, threads_per_worker)
            address = cluster.scheduler_address
            if warm is not None:
                with contextlib.suppress(Exception):  # a failure shows up again, reported, in the tasks
                    client.run(warm)
        if booting is not None:
            booting.join()
            if boot_error:
                raise boot_error[0]
        from prefect.settings import PREFECT_API_URL, temporary_settings

        with temporary_settings(updates={PREFECT_API_URL: os.environ["PREFECT_API_URL"]}):
            yield DaskTaskRunner(address=address)
    finally:
        if client is not None:
            client.close()
            cluster.close()
        if server is not None:
            _drain_prefect()  # send queued events and logs while the server is still up
            if booting is not None:
                booting.join()
            os.environ.pop("PREFECT_API_URL", None)
            server.stop()


def preload(*steps) -> threading.Thread:
    """Runs `steps` in a background thread at the lowest CPU priority (Linux nices threads one by
    one), so slow imports for the run's last steps use idle cores instead of the workers' time."""
    def run():
        with contextlib.suppress(Exception):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
        for step in steps:
            with contextlib.suppress(Exception):  # a failure shows up again where the step is really needed
                step()

    thread = threading.Thread(target=run, name="faceveil-preload", daemon=True)
    thread.start()
    return thread


def preload_validation(dest: str, storage_options: dict, tracking_uri: str | None) -> threading.Thread:
    """Imports Great Expectations, MLflow and matplotlib and opens the run's MLflow store (creating
    its database takes seconds) while the workers work."""
    from faceveil.storage.paths import Location

    def store():
        from faceveil.validation import mlflow_log

        mlflow_log.open_store(*mlflow_log.store_for(Location(dest, storage_options), tracking_uri))

    return preload(lambda: __import__("great_expectations"), store, lambda: __import__("matplotlib.backends.backend_agg"))


def _drain_prefect() -> None:
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    for service in (EventsWorker, APILogWorker):
        with contextlib.suppress(Exception):
            service.drain_all(timeout=5)


def _local_cluster(n_workers: int, threads_per_worker: int):
    import logging

    import dask
    from distributed import Client, LocalCluster

    if os.environ.get("PREFECT_LOGGING_LEVEL", "").upper() in ("WARNING", "ERROR", "CRITICAL"):
        logging.getLogger("distributed").setLevel(logging.WARNING)
    # Dask sets MALLOC_TRIM_THRESHOLD_ in its workers, which turns off glibc's adaptive mmap
    # threshold: every decoded frame is then mmapped, zeroed and unmapped (encoding ~35% slower).
    dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None})
    cluster = LocalCluster(n_workers=n_workers, threads_per_worker=threads_per_worker, processes=True,
                           dashboard_address=None, silence_logs=40)
    return cluster, Client(cluster)
