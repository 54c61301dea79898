"""One Prefect API server and one TLS Dask cluster for the whole test session (CI time: each run
otherwise boots a server and a 2-worker cluster, and warms the workers, ~12 s each).

`install()` wraps `faceveil.flows.runtime._flow_runtime`: an in-process run that would start its own
local cluster and server runs on the session's instead, which are made the same way
(`dask_cluster.local_cluster`, `runtime.LocalPrefectServer` with a random password), so the flow,
its task runner and the TLS between client and workers are the real ones. A run takes its own, as
in production, when
  - it names a Dask address or a Prefect API (the test is about those),
  - the test is marked `own_cluster` (worker processes killed or counted, the run's own server),
  - this process's environment differs from the one the shared workers were started with (a test's
    S3 endpoint, home folder or TLS switch would not reach them), or
  - FACEVEIL_TEST_OWN_CLUSTER=1 (debugging).
After each run, work the run left on the shared workers (a failed run's other tasks) is waited for,
and the workers are restarted if it does not end, so no test sees another's tasks."""

from __future__ import annotations

import collections
import contextlib
import os
import secrets
import time

from faceveil.flows import runtime

_OWN_ENV = ("PREFECT_API_URL", "PREFECT_API_AUTH_STRING")  # set around a run; workers get them from Prefect's context
_state: dict = {"own": False, "started": None, "baseline": None}
RUNS: collections.Counter = collections.Counter()  # "shared", or why a run took its own cluster


# set in this process by pytest (the test's name) and by Dask's cluster start (its workers' own values): not a
# difference in what a run's workers would be given
_NOT_THE_RUNS = (
    "PYTEST_CURRENT_TEST",
    "__DASK_PARENT_PID",
    "PYTHONHASHSEED",
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "KERAS_BACKEND",
    "ORT_LOGGING_LEVEL",
    "TPU_SKIP_MDS_QUERY",
)
# and by libraries on import (LiteRT/TensorFlow's runtime, onnxruntime, OpenCV's Qt paths, MLflow's telemetry
# session, torch's inductor cache folder): a worker importing them sets the same. Without these, a test file run alone (whose collection did not
# import OpenCV or MLflow) gave every run after the first its own cluster: ~2x the time of a one-photo run
_NOT_THE_RUNS_PREFIXES = ("KMP_", "TF_", "XLA_", "QT_", "_MLFLOW_", "LD_LIBRARY_PATH", "TORCHINDUCTOR_")


def _env() -> dict[str, str]:
    return {
        k: v
        for k, v in os.environ.items()
        if k not in _OWN_ENV + _NOT_THE_RUNS and not k.startswith(_NOT_THE_RUNS_PREFIXES)
    }


def _own_reason(address) -> str | None:
    if address:
        return "a Dask address given"
    if _state["own"]:
        return "test marked own_cluster"
    if os.environ.get("FACEVEIL_TEST_OWN_CLUSTER") == "1":
        return "FACEVEIL_TEST_OWN_CLUSTER=1"
    now, base = _env(), _state["baseline"]
    changed = sorted(k for k in now.keys() | base.keys() if now.get(k) != base.get(k))
    return f"environment differs ({', '.join(changed)})" if changed else None


def _cluster() -> dict:
    """The session's cluster (started on first use)."""
    if _state["started"] is None:
        from faceveil.flows.dask_cluster import local_cluster

        # side by side (pytest-xdist), each process's cluster has one worker: two processes with two workers
        # each (3-5 GiB apiece with the models) ran a 24 GiB machine out of memory
        cluster, client, workdir = local_cluster(1 if os.environ.get("PYTEST_XDIST_WORKER") else 2, 1)
        _state["started"] = {"cluster": cluster, "client": client, "workdir": workdir, "server": None}
    return _state["started"]


def _server(s: dict) -> tuple[str, str]:
    """(URL, auth) of the session's Prefect API server for runs that have none configured (started on first use)."""
    if s["server"] is None:
        port = runtime.free_port()
        url, auth = f"http://127.0.0.1:{port}/api", f"faceveil:{secrets.token_urlsafe(32)}"
        server = runtime.LocalPrefectServer(port, auth=auth)
        server.wait_ready(timeout=180)
        s.update(server=server, url=url, auth=auth)
    return s["url"], s["auth"]


def _settle(client, timeout: float = 60.0) -> None:
    """Waits for the scheduler to hold no task (a run's leftovers); restarts the workers if it still does."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not client.run_on_scheduler(lambda dask_scheduler: len(dask_scheduler.tasks)):
            return
        time.sleep(0.2)
    RUNS["workers restarted after a run"] += 1
    client.restart()


def _shared_flow_runtime(original):
    def flow_runtime_(n_workers, threads_per_worker, address, warm, tls_files, meanwhile=None):
        reason = _own_reason(address)
        RUNS[reason or "shared"] += 1
        if reason:
            yield from original(n_workers, threads_per_worker, address, warm, tls_files, meanwhile)
            return
        from prefect.settings import PREFECT_API_AUTH_STRING, PREFECT_API_URL, temporary_settings
        from prefect.task_runners import ThreadPoolTaskRunner
        from prefect_dask import DaskTaskRunner

        s = _cluster()
        configured = os.environ.get("PREFECT_API_URL")  # the session's prefect_server fixture, when a test asked for it
        if not configured:
            url, auth = _server(s)
            os.environ.update({"PREFECT_API_URL": url, "PREFECT_API_AUTH_STRING": auth})
        url, auth = os.environ["PREFECT_API_URL"], os.environ.get("PREFECT_API_AUTH_STRING")
        try:
            if warm is not None:
                with contextlib.suppress(Exception):
                    warm() if n_workers == 0 else s["client"].run(warm)  # 0: the tasks run in this process
            if meanwhile is not None:
                meanwhile()
            with temporary_settings(
                updates={
                    PREFECT_API_URL: url,
                    **({PREFECT_API_AUTH_STRING: auth} if auth else {}),
                    **({} if configured else {"flows.heartbeat_frequency": None}),  # as on a run's own server
                }
            ):
                yield (
                    ThreadPoolTaskRunner(max_workers=threads_per_worker)
                    if n_workers == 0
                    else DaskTaskRunner(
                        address=s["cluster"].scheduler_address, client_kwargs={"security": s["cluster"].security}
                    )
                )
        finally:
            runtime._drain_prefect()
            if not configured:
                os.environ.pop("PREFECT_API_URL", None)
                os.environ.pop("PREFECT_API_AUTH_STRING", None)
            _settle(s["client"])

    return flow_runtime_


def install() -> None:
    """Wraps the runtime; the environment now is what the shared workers will have."""
    from faceveil.offline import set_offline_env

    set_offline_env()
    _state["baseline"] = _env()
    runtime._flow_runtime = _shared_flow_runtime(runtime._flow_runtime)


@contextlib.contextmanager
def own_cluster(on: bool):
    """While on, runs start their own cluster and server (a test marked own_cluster)."""
    before, _state["own"] = _state["own"], on
    try:
        yield
    finally:
        _state["own"] = before


def shutdown() -> None:
    s, _state["started"] = _state["started"], None
    if s is None:
        return
    from faceveil.flows.dask_cluster import close_cluster

    with contextlib.suppress(Exception):
        close_cluster(s["client"], s["cluster"], s["workdir"])
    if s["server"] is not None:
        s["server"].stop()
