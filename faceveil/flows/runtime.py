"""Where flows run: telemetry off, one local Prefect API server per run unless one is configured,
and the Dask task runner (a local cluster, or an existing scheduler's address, tcp:// or tls://;
flows/dask_cluster.py). The local cluster talks tls:// with a throwaway in-memory certificate, so task
results (embeddings, restore's data keys) never cross a socket in clear; FACEVEIL_DASK_TLS=0 turns
that off, for measuring its cost only (benchmarks/throughput.py --tls-cost).
`_flow_runtime` is over 60 lines: one context manager starts the Prefect server and the Dask cluster
side by side and stops them in reverse, their threads in one scope."""

from __future__ import annotations

import contextlib
import os
import threading

from faceveil.flows.dask_cluster import client_security, close_cluster, dask_tls_files, local_cluster
from faceveil.offline import set_offline_env


@contextlib.contextmanager
def flow_runtime(
    n_workers: int,
    threads_per_worker: int = 1,
    address: str | None = None,
    warm=None,
    tls: tuple = (None, None, None),
    meanwhile=None,
):
    """Yields a DaskTaskRunner on `address`, or on a local cluster of worker processes started here,
    or, with `n_workers` 0 and no address, Prefect's ThreadPoolTaskRunner (`threads_per_worker`
    threads): the tasks run in this process and `warm` runs here (a run of one photo, which a
    cluster's start and its worker's imports would only slow down: preflight.in_this_process);
    a tls:// scheduler is reached with the client certificate `tls` (CA, certificate, key files)
    or Dask's configuration names (dask_tls_files; none: a ValueError before anything starts).
    A local cluster talks TLS (dask_cluster.local_tls) and keeps its workers' files in a 0700 folder of its own.
    Unless PREFECT_API_URL is set, one temporary Prefect API server on 127.0.0.1 serves the run (so
    workers do not each start their own; it asks for a random password the run's processes alone
    get, in PREFECT_API_AUTH_STRING); it boots while the cluster starts and `warm` runs once
    on every local worker (imports, model loading). While it runs, the key variables are out of this
    process's environment, so no process it starts (or a nanny restarts) inherits them. `meanwhile`
    runs here once both are starting, before waiting for them (the flow's imports)."""
    files = dask_tls_files(address, *tls)
    with without_secrets():
        yield from _flow_runtime(n_workers, threads_per_worker, address, warm, files, meanwhile)


def _flow_runtime(n_workers: int, threads_per_worker: int, address: str | None, warm, tls_files, meanwhile=None):
    set_offline_env()
    server, booting, boot_error, warming, port = None, None, [], None, None
    client_kwargs = client_security(tls_files)
    if not os.environ.get("PREFECT_API_URL"):  # its address and credentials first: the workers inherit them
        import secrets

        port = free_port()
        os.environ["PREFECT_API_URL"] = f"http://127.0.0.1:{port}/api"
        os.environ["PREFECT_API_AUTH_STRING"] = f"faceveil:{secrets.token_urlsafe(32)}"
    cluster = client = workdir = None
    try:
        if port is not None:  # the server process boots (~4 s) while the cluster starts and warms up
            server = LocalPrefectServer(port, auth=os.environ["PREFECT_API_AUTH_STRING"])

            def boot():
                try:
                    server.wait_ready(timeout=180)
                except Exception as e:  # re-raised in the caller's thread
                    boot_error.append(e)

            booting = threading.Thread(target=boot, name="prefect-server-boot", daemon=True)
            booting.start()
        if not address and n_workers == 0:  # no cluster: this process loads the models while the server boots
            if warm is not None:
                warming = threading.Thread(target=_quietly, args=(warm,), name="faceveil-warm", daemon=True)
                warming.start()
        elif not address:  # worker processes start (and import) while the server boots
            cluster, client, workdir = local_cluster(n_workers, threads_per_worker)
            address = cluster.scheduler_address
            if cluster.security.require_encryption:
                client_kwargs = {"security": cluster.security}
            if warm is not None:
                warming = threading.Thread(target=_quietly, args=(client.run, warm), name="faceveil-warm", daemon=True)
                warming.start()
        if address:
            from prefect_dask import DaskTaskRunner

            runner = DaskTaskRunner(address=address, client_kwargs=client_kwargs)
        else:
            from prefect.task_runners import ThreadPoolTaskRunner

            runner = ThreadPoolTaskRunner(max_workers=threads_per_worker)
        if meanwhile is not None:
            meanwhile()
        for thread in (warming, booting):
            if thread is not None:
                thread.join()
        if boot_error:
            raise boot_error[0]
        from prefect.settings import PREFECT_API_AUTH_STRING, PREFECT_API_URL, temporary_settings

        auth = os.environ.get("PREFECT_API_AUTH_STRING")
        with temporary_settings(
            updates={
                PREFECT_API_URL: os.environ["PREFECT_API_URL"],
                **({PREFECT_API_AUTH_STRING: auth} if auth else {}),
                # no one watches a server that ends with the run for crashed runs; the heartbeat
                # thread sleeps in 1 s steps, and the flow's end waited for it (up to 1 s)
                **({"flows.heartbeat_frequency": None} if server is not None else {}),
            }
        ):
            yield runner
    finally:
        closing = None
        if client is not None:  # the cluster closes while the server drains and stops
            closing = threading.Thread(
                target=_quietly, args=(close_cluster, client, cluster, workdir), name="faceveil-close"
            )
            closing.start()
        if server is not None:
            _drain_prefect()  # send queued events and logs while the server is still up
            if booting is not None:
                booting.join()
            server.stop()
        if port is not None:
            os.environ.pop("PREFECT_API_URL", None)
            os.environ.pop("PREFECT_API_AUTH_STRING", None)
        if closing is not None:
            closing.join()


def preload(*steps) -> threading.Thread:
    """Runs `steps` in a background thread, so slow imports for the run's last steps happen while the
    run waits for its server, cluster and workers. At normal priority: niced to 19 it got almost no
    CPU beside a booting server and working workers, and a one-photo run then waited 2-3 s for the
    imports it needed (benchmarks/startup.py; docs/benchmarks.md)."""

    def run():
        for step in steps:
            with contextlib.suppress(Exception):  # a failure shows up again where the step is really needed
                step()

    thread = threading.Thread(target=run, name="faceveil-preload", daemon=True)
    thread.start()
    return thread


_PRELOADS: dict[tuple, threading.Thread] = {}
_PRELOADS_LOCK = threading.Lock()


def preload_validation(state, tracking_uri: str | None, artifacts: str | None = None) -> threading.Thread:
    """Imports Great Expectations, MLflow and matplotlib and opens the run's MLflow store in the
    state root `state` (creating its database takes seconds) in the background. Once per process and
    store: the command starts it as soon as it knows there is work (before the server and cluster
    boot), and the flow, which also runs without the command (deployments), asks again."""

    def store():
        from faceveil.validation import mlflow_log

        mlflow_log.open_store(*mlflow_log.store_for(state, tracking_uri, artifacts))

    key = (str(getattr(state, "url", state)), tracking_uri, artifacts)
    with _PRELOADS_LOCK:
        if key not in _PRELOADS:
            _PRELOADS[key] = preload(
                lambda: __import__("great_expectations"), store, lambda: __import__("matplotlib.backends.backend_agg")
            )
        return _PRELOADS[key]


class LocalPrefectServer:
    """A temporary Prefect API server (uvicorn, UI off) on 127.0.0.1:`port`, as Prefect's own
    SubprocessASGIServer runs it, started without importing the server's modules here (seconds of
    CPU the starting workers need). With `ui`, a server as `prefect server start` runs it: the UI at
    its root, its API at /api. `auth`: "user:password" the API then asks of every call (HTTP basic
    auth; the run's own server gets a random one, in PREFECT_API_AUTH_STRING for its clients)."""

    def __init__(self, port: int, ui: bool = False, auth: str | None = None):
        import subprocess
        import sys

        self.url = f"http://127.0.0.1:{port}/api"
        env = {
            **_public_env(),
            "PREFECT_UI_ENABLED": "0",
            "PREFECT__SERVER_EPHEMERAL": "1",
            "PREFECT__SERVER_FINAL": "1",
        }
        if ui:
            env = {**_public_env(), "PREFECT_UI_ENABLED": "1", "PREFECT_UI_API_URL": self.url}
            env.pop("PREFECT_API_URL", None)
        if auth:
            env["PREFECT_SERVER_API_AUTH_STRING"] = auth
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "--factory",
                "prefect.server.api.server:create_app",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--log-level",
                "error",
                "--lifespan",
                "on",
            ],
            env=env,
            stdin=subprocess.DEVNULL,
        )

    def wait_ready(self, timeout: float) -> None:
        wait_for_api(self.url, self.process, timeout)

    def stop(self) -> None:
        import subprocess

        self.process.terminate()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def wait_for_api(api_url: str, proc=None, timeout: float = 180, every: float = 0.1) -> None:
    """Returns once the Prefect API at `api_url` answers /health; raises when `proc` (the server
    process, if this one started it) exits first or `timeout` seconds pass."""
    import time

    import httpx

    deadline = time.monotonic() + timeout
    with httpx.Client() as client:
        while time.monotonic() < deadline:
            if proc is not None and proc.poll() is not None:
                raise RuntimeError(f"the Prefect API server exited with code {proc.returncode}")
            try:
                if client.get(f"{api_url.rstrip('/')}/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(every)
    raise RuntimeError(f"the Prefect API server did not answer at {api_url} within {timeout:.0f} s")


def _public_env() -> dict[str, str]:
    """This process's environment less the key variables (for the processes it starts)."""
    from faceveil.storage.keys import SECRET_ENV

    return {k: v for k, v in os.environ.items() if k not in SECRET_ENV}


_WITHHELD: dict[str, str] = {}  # what without_secrets took out of os.environ, for this process only


@contextlib.contextmanager
def without_secrets(extra: tuple[str, ...] = ()):
    """The key variables (and the `extra` ones) are out of os.environ during the block (processes
    started then inherit it) and back afterwards; this process can still read them with `withheld`
    (a flow resolving its key reference)."""
    from faceveil.storage.keys import SECRET_ENV

    saved = {k: os.environ.pop(k) for k in (*SECRET_ENV, *extra) if k in os.environ}
    _WITHHELD.update(saved)
    try:
        yield
    finally:
        for k in saved:
            _WITHHELD.pop(k, None)
        os.environ.update(saved)


def withheld(name: str) -> str | None:
    """A variable `without_secrets` holds out of the environment just now."""
    return _WITHHELD.get(name)


def free_port() -> int:
    """A TCP port on 127.0.0.1 free just now (for a server this process starts)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _quietly(fn, *args) -> None:
    with contextlib.suppress(Exception):  # a failure shows up again, reported, where it matters
        fn(*args)


def _drain_prefect() -> None:
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    for service in (EventsWorker, APILogWorker):
        with contextlib.suppress(Exception):
            service.drain_all(timeout=5)
