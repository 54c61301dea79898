"""Shared fixtures: the ../shared/data location, a Prefect API server per test session."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import shared_runtime

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"

os.environ.update(
    {
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "true",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "GX_ANALYTICS_ENABLED": "false",
        "AWS_EC2_METADATA_DISABLED": "true",
        "PREFECT_LOGGING_LEVEL": "WARNING",
        "DASK_LOGGING__DISTRIBUTED": "error",  # as the CLI sets it: the shared runtime's workers see what a CLI run's would
    }
)
os.environ.setdefault("PREFECT_HOME", tempfile.mkdtemp(prefix="faceveil-prefect-home-"))
os.environ["FACEVEIL_HOME"] = tempfile.mkdtemp(prefix="faceveil-home-")  # the MLflow store of s3:// archives


FIGURES: list[str] = []


@pytest.fixture(scope="session")
def figures():
    """Append measured figures here; they are printed at the end of the run."""
    return FIGURES


@pytest.fixture(scope="session", autouse=True)
def _shared_runtime():
    """In-process runs share one Prefect API server and one TLS Dask cluster (tests/shared_runtime.py)."""
    shared_runtime.install()
    yield
    shared_runtime.shutdown()


@pytest.fixture(autouse=True)
def _own_cluster(request):
    """A test marked own_cluster runs with a cluster and server of its own, as a user's run would."""
    with shared_runtime.own_cluster(request.node.get_closest_marker("own_cluster") is not None):
        yield


def pytest_sessionfinish(session):
    """Under pytest-xdist (`make test` runs test files side by side), a worker hands its figures and
    runtime counts to the controller, which prints them."""
    out = getattr(session.config, "workeroutput", None)
    if out is not None:
        out["faceveil_figures"], out["faceveil_runs"] = list(FIGURES), dict(shared_runtime.RUNS)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):
    """The controller's side of pytest_sessionfinish (a pytest-xdist hook; none without it)."""
    out = getattr(node, "workeroutput", {})
    FIGURES.extend(out.get("faceveil_figures", ()))
    shared_runtime.RUNS.update(out.get("faceveil_runs", {}))


def pytest_terminal_summary(terminalreporter):
    if shared_runtime.RUNS:
        terminalreporter.section("flow runtimes")
        for what, n in shared_runtime.RUNS.most_common():
            terminalreporter.write_line(f"{n:4d}  {what}")
    if FIGURES:
        terminalreporter.section("measured figures")
        for line in FIGURES:
            terminalreporter.write_line(line)


SHARED_ABSENT = (
    f"needs the evaluation data ../shared/data, not present at {SHARED} "
    "(it lives beside the repo in CI; deselect with -m 'not shared_data')"
)


def shared_data() -> Path:
    """../shared/data, or a skip where it is absent (a user's clone)."""
    if not SHARED.is_dir():
        pytest.skip(SHARED_ABSENT)
    return SHARED


@pytest.fixture(scope="session")
def shared() -> Path:
    return shared_data()


def pytest_runtest_setup(item):
    """A test marked shared_data skips before any of its fixtures (a Prefect server, a flow run)
    start where the data is absent."""
    if item.get_closest_marker("shared_data") is not None and not SHARED.is_dir():
        pytest.skip(SHARED_ABSENT)


def pytest_collection_modifyitems(config, items):
    """Keeps the markers honest: a test that reads ../shared/data (the `shared` fixture) must be
    marked shared_data, and one that starts the Prefect API server (`prefect_server`) slow, so that
    -m "not shared_data" and -m "not slow" select what they say."""
    unmarked = [
        f"{item.nodeid} (uses `{fixture}`, not marked {marker})"
        for item in items
        for fixture, marker in (("shared", "shared_data"), ("prefect_server", "slow"))
        if fixture in getattr(item, "fixturenames", ()) and item.get_closest_marker(marker) is None
    ]
    if unmarked:
        raise pytest.UsageError("tests missing their marker:\n  " + "\n  ".join(unmarked))
    if hasattr(config, "workerinput"):  # a pytest-xdist worker: its order is the order files are handed out
        items[:] = heaviest_files_first(items)


def heaviest_files_first(items: list) -> list:
    """The test files over ../shared/data with slow tests first, then the other slow ones, then the rest,
    each file kept whole and in its order. Under pytest-xdist (`make test` on a machine with the memory)
    files are handed out in this order, so the long ones start early and the many short ones fill in at
    the end, instead of one process running a long file alone while the other waits. In one process the
    collection order stays."""
    files: dict[str, list] = {}
    for item in items:
        files.setdefault(item.nodeid.split("::")[0], []).append(item)

    def weight(tests: list) -> int:
        slow = [t for t in tests if t.get_closest_marker("slow") is not None]
        return 0 if any(t.get_closest_marker("shared_data") is not None for t in slow) else 1 if slow else 2

    return [item for tests in sorted(files.values(), key=weight) for item in tests]


@pytest.fixture(scope="session")
def prefect_server():
    """One Prefect API server on 127.0.0.1 for the session, the one a run starts for itself
    (flows/runtime.LocalPrefectServer); PREFECT_API_URL points at it."""
    from faceveil.flows.runtime import LocalPrefectServer, free_port

    server = LocalPrefectServer(free_port())
    try:
        server.wait_ready(120)
        old = os.environ.get("PREFECT_API_URL")
        os.environ["PREFECT_API_URL"] = server.url
        yield server.url
        if old is None:
            os.environ.pop("PREFECT_API_URL", None)
        else:
            os.environ["PREFECT_API_URL"] = old
    finally:
        server.stop()


@pytest.fixture(scope="module")
def s3_endpoint():
    """moto's S3 server on 127.0.0.1 for the module's tests; FACEVEIL_S3_ENDPOINT and test credentials
    set while it runs."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    env = {
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": "us-east-1",
        "FACEVEIL_S3_ENDPOINT": url,
    }
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    import httpx

    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            httpx.get(url, timeout=1)
            break
        except httpx.HTTPError:
            time.sleep(0.2)
    yield url
    proc.terminate()
    proc.wait(10)
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
