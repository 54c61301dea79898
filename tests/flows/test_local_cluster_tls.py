"""Every run's local Dask cluster (flows/runtime.flow_runtime) talks tls:// only, with a throwaway
in-memory certificate that the task runner's client gets too: a plain tcp:// client, and a TLS client
with a certificate of its own, are turned away. Its workers keep their files in a new 0700 folder,
removed with the cluster. FACEVEIL_DASK_TLS=0 (for benchmarks only) gives a plain tcp:// cluster."""

import operator
import os
import stat
from pathlib import Path

import pytest
from distributed import Client
from distributed.comm.core import CommClosedError, FatalCommClosedError
from distributed.security import Security

from faceveil.flows.runtime import flow_runtime

pytestmark = [pytest.mark.slow, pytest.mark.own_cluster]  # a Dask cluster of worker processes, its own


@pytest.fixture
def no_server(monkeypatch):
    """No Prefect API server starts: only the cluster is under test."""
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:9/api")
    monkeypatch.delenv("FACEVEIL_DASK_TLS", raising=False)


def _connects(address: str, security=None) -> bool:
    try:
        with Client(address, security=security, timeout=5, set_as_default=False) as client:
            return client.submit(operator.add, 1, 1).result(timeout=30) == 2
    except FatalCommClosedError:  # a TLS handshake with a certificate the cluster does not know
        return False
    except CommClosedError:  # plain TCP to a TLS listener: the connection is reset
        return False


def test_local_cluster_takes_tls_with_its_own_certificate_only(no_server):
    with flow_runtime(1) as runner:
        address, security = runner.address, runner.client_kwargs["security"]
        assert address.startswith("tls://127.0.0.1:") and security.require_encryption
        assert _connects(address, security)  # the control: the runner's client gets in
        with Client(address, security=security, timeout=5, set_as_default=False) as client:
            folders = list(client.run(lambda dask_worker: dask_worker.local_directory).values())
        assert not _connects("tcp://" + address.split("://", 1)[1])
        assert not _connects(address, Security.temporary())
        own = next(p for p in Path(folders[0]).parents if p.name.startswith("faceveil-dask-"))
        assert stat.S_IMODE(own.stat().st_mode) == 0o700 and own.stat().st_uid == os.getuid()
        assert "Temporary (In-memory)" in repr(security) and "PRIVATE KEY" not in repr(security)
    assert not own.exists()


def test_tls_off_for_benchmarks(no_server, monkeypatch):
    monkeypatch.setenv("FACEVEIL_DASK_TLS", "0")
    with flow_runtime(1) as runner:
        assert runner.address.startswith("tcp://127.0.0.1:") and runner.client_kwargs == {"set_as_default": False}
        assert _connects(runner.address)


def test_the_runs_own_prefect_server_asks_for_its_password(monkeypatch):
    """Without PREFECT_API_URL a run starts its own API server on 127.0.0.1, with a random password its
    processes get in PREFECT_API_AUTH_STRING: any other local user's call is refused."""
    import httpx

    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    monkeypatch.delenv("PREFECT_API_AUTH_STRING", raising=False)
    with flow_runtime(1):
        url, auth = os.environ["PREFECT_API_URL"], os.environ["PREFECT_API_AUTH_STRING"]
        assert len(auth.split(":", 1)[1]) >= 32
        assert httpx.post(f"{url}/flows/filter", json={"limit": 1}, timeout=10).status_code == 401
        assert (
            httpx.post(f"{url}/flows/filter", json={"limit": 1}, auth=tuple(auth.split(":", 1)), timeout=10).status_code
            == 200
        )
    assert "PREFECT_API_AUTH_STRING" not in os.environ and "PREFECT_API_URL" not in os.environ


def test_no_workers_no_cluster_the_tasks_run_here(no_server):
    """flow_runtime(0): Prefect's thread pool in this process (preflight.in_this_process: one photo), the
    warm-up run here, no worker process started."""
    from prefect.task_runners import ThreadPoolTaskRunner

    warmed = []
    with flow_runtime(0, warm=lambda: warmed.append(os.getpid())) as runner:
        assert isinstance(runner, ThreadPoolTaskRunner) and runner._max_workers == 1
    assert warmed == [os.getpid()]
