"""`faceveil serve`: a Prefect server on 127.0.0.1 (or the one $PREFECT_API_URL names), the work
pools deployments/prefect.yaml names (type process), its deployments registered by Prefect's own
`prefect deploy` (the restore deployment only when the config's [restore] table says deploy = true),
and one worker per pool; stopped together, with every process they started.

The server started here takes HTTP basic auth with a random secret made for this start; it reaches
the worker and `prefect deploy` in their environment (PREFECT_API_AUTH_STRING) and the user in a 0600
file beside the logs (removed at stop), never in output or logs. An external server's credentials
are $PREFECT_API_AUTH_STRING's.

What crosses to the server and the deployments: the config file's path (a flow parameter) and, in
the file, a reference to the key. No key variable reaches the server; the worker gets one only when
the file's key reference names that variable (its flow runs read it there).
Over 300 lines: one `Service` that starts the server, pools, deployments and workers and stops them
together, with the process helpers only it uses."""

from __future__ import annotations

import contextlib
import os
import secrets
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import faceveil
from faceveil.flows.prefect_api import (
    POOL_TYPE,
    delete_deployment,
    ensure_pool,
    external_auth,
    registered,
    wait_for_workers,
)
from faceveil.flows.runtime import wait_for_api

REPO = Path(faceveil.__file__).resolve().parent.parent  # the code the deployments run
DEFAULT_PREFECT_FILE = REPO / "deployments" / "prefect.yaml"
RESTORE_FLOW = "scheduled_restore"  # its deployments are registered only when the config allows restores
AUTH_USER = "faceveil"
AUTH_FILE = "api-auth"  # in the logs folder, while serve runs: the UI's login asks for its line


def read_prefect_file(path: str | os.PathLike) -> dict:
    """prefect.yaml, checked the way `prefect deploy` reads it (its pydantic model)."""
    import yaml

    with open(path) as f:
        data = yaml.safe_load(f) or {}
    try:
        from prefect.cli.deploy._models import PrefectYamlModel  # Prefect's own (private) model of the file
    except ImportError:  # moved in another Prefect version: `prefect deploy` still checks it
        return data
    PrefectYamlModel.model_validate(data)
    return data


def pools_of(prefect_yaml: dict) -> list[str]:
    names = [(d.get("work_pool") or {}).get("name") for d in prefect_yaml.get("deployments") or []]
    return sorted({n for n in names if n})


@dataclass
class Service:
    """Start with `start`, stop with `stop` (idempotent); `exited` names a process that died."""

    config_path: str
    prefect_file: Path = DEFAULT_PREFECT_FILE
    port: int = 4200
    worker: bool = True
    key_env: tuple[str, ...] = ()  # variables the worker's flow runs read the key from (an env reference)
    restore: bool = False  # register the restore deployment (the config's [restore] deploy)
    logs: Path | None = None
    api_url: str | None = None
    ui_url: str | None = None
    started_server: bool = False
    auth_file: Path | None = None
    deployments: list[str] = field(default_factory=list)
    processes: list[tuple[str, subprocess.Popen]] = field(default_factory=list)
    _settings: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)
    _auth: str | None = field(default=None, repr=False)  # "user:password" of the API

    def start(self, say=print) -> None:
        from faceveil.offline import set_offline_env

        set_offline_env()
        spec = read_prefect_file(self.prefect_file)
        home = Path(os.environ.get("PREFECT_HOME") or Path.home() / ".prefect").expanduser()
        self.logs = self.logs or home / "faceveil-serve"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.logs.chmod(0o700)
        self.api_url = os.environ.get("PREFECT_API_URL")
        if self.api_url:
            wait_for_api(self.api_url, None, 30, every=0.3)
            self._auth = os.environ.get("PREFECT_API_AUTH_STRING") or None
            say(f"Prefect API: {self.api_url} (from $PREFECT_API_URL; {external_auth(self.api_url, self._auth)})")
        else:
            self._start_server()
            say(f"Prefect API: {self.api_url} (server started here; database {home / 'prefect.db'}; basic auth)")
            say(f"API credentials: {self.auth_file} (user:password, mode 0600, valid until serve stops)")
        self.ui_url = self.api_url.rstrip("/").removesuffix("/api")
        say(f"UI: {self.ui_url}")
        os.environ["PREFECT_API_URL"] = self.api_url  # every child
        from prefect.settings import PREFECT_API_AUTH_STRING, PREFECT_API_URL, temporary_settings

        updates = {PREFECT_API_URL: self.api_url, **({PREFECT_API_AUTH_STRING: self._auth} if self._auth else {})}
        self._settings.enter_context(temporary_settings(updates=updates))  # this process's client
        pools = pools_of(spec)
        for pool in pools:
            say(f"work pool: {pool} ({ensure_pool(pool)})")
        self._deploy(say)
        for d in self.deployments:
            say(f"deployment: {d}")
        if self.worker:
            for pool in pools:
                self._start_worker(pool)
            wait_for_workers(pools, self.processes, timeout=120)
            say(f"worker: {', '.join(pools)} (logs in {self.logs})")

    def _start_server(self) -> None:
        _port_free(self.port)
        self.api_url = f"http://127.0.0.1:{self.port}/api"
        self._auth = f"{AUTH_USER}:{secrets.token_urlsafe(32)}"
        self.auth_file = self.logs / AUTH_FILE
        _write_private(self.auth_file, self._auth + "\n")
        env = {
            **_child_env(()),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_SERVER_API_AUTH_STRING": self._auth,
        }
        for name in ("PREFECT_API_URL", "PREFECT_API_AUTH_STRING"):  # another server's
            env.pop(name, None)
        self._spawn(
            "server",
            [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(self.port)],
            env,
        )
        self.started_server = True
        wait_for_api(self.api_url, self.processes[-1][1], 180, every=0.3)

    def _client_env(self) -> dict[str, str]:
        """The API's address and credentials, for a child process that calls it."""
        return {"PREFECT_API_URL": self.api_url, **({"PREFECT_API_AUTH_STRING": self._auth} if self._auth else {})}

    def _deploy(self, say=print) -> None:
        """`prefect deploy` of the prefect file's deployments (the restore ones only when allowed; an
        earlier registration of one is deleted otherwise), from the repository (its entrypoints are
        module paths; the working directory its runs get is the repository's), the config path filled in."""
        specs = read_prefect_file(self.prefect_file).get("deployments") or []
        skipped = [d["name"] for d in specs if not self.restore and _is_restore(d)]
        wanted = [d["name"] for d in specs if d["name"] not in skipped]
        if not wanted:
            raise RuntimeError(f"{self.prefect_file}: no deployment to register ([restore] deploy is not true)")
        env = {
            **_child_env(()),
            **self._client_env(),
            "PREFECT_CLI_PROMPT": "false",
            "FACEVEIL_CONFIG": str(Path(self.config_path).resolve()),
            "PYTHONPATH": _pythonpath(),
        }
        names = [a for w in wanted for a in ("--name", w)]
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "prefect",
                "deploy",
                *names,
                "--prefect-file",
                str(Path(self.prefect_file).resolve()),
            ],
            cwd=REPO,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=300,
        )
        (self.logs / "deploy.log").write_text(done.stdout)
        if done.returncode != 0:
            raise RuntimeError(f"prefect deploy failed (exit {done.returncode}):\n{done.stdout[-3000:]}")
        for name in skipped:
            removed = delete_deployment(f"{RESTORE_FLOW}/{name}")
            say(
                f"deployment {RESTORE_FLOW}/{name}: not registered (the config's [restore] deploy is not true)"
                + ("; the one registered before was deleted" if removed else "")
            )
        self.deployments = registered()
        missing = sorted(w for w in wanted if not any(f"/{w} (" in d for d in self.deployments))
        if missing:
            raise RuntimeError(f"prefect deploy did not register {', '.join(missing)}:\n{done.stdout[-3000:]}")

    def _start_worker(self, pool: str) -> None:
        env = {**_child_env(self.key_env), **self._client_env(), "PYTHONPATH": _pythonpath()}
        self._spawn(
            f"worker {pool}",
            [
                sys.executable,
                "-m",
                "prefect",
                "worker",
                "start",
                "--pool",
                pool,
                "--type",
                POOL_TYPE,
                "--name",
                f"faceveil-{pool}",
            ],
            env,
        )

    def _spawn(self, name: str, cmd: list[str], env: dict) -> None:
        log = open(self.logs / f"{name.replace(' ', '-')}.log", "ab")
        try:  # a session of its own: a Ctrl-C at the terminal reaches `faceveil serve`, which stops it
            proc = subprocess.Popen(
                cmd,
                env=env,
                cwd=REPO,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        finally:
            log.close()
        self.processes.append((name, proc))

    def exited(self) -> str | None:
        for name, proc in self.processes:
            if proc.poll() is not None:
                return f"the {name} exited with code {proc.returncode} (log: {self.logs})"
        return None

    def stop(self, timeout: float = 30) -> None:
        """Workers first (their flow runs and Dask clusters with them), then the server."""
        while self.processes:
            _name, proc = self.processes.pop()
            _stop_tree(proc, timeout)
        self._settings.close()
        if self.started_server:
            os.environ.pop("PREFECT_API_URL", None)
            self.started_server = False
        if self.auth_file is not None:
            self.auth_file.unlink(missing_ok=True)  # the secret is of no use once the server is gone
            self.auth_file = None


def _child_env(keep: tuple[str, ...]) -> dict[str, str]:
    """This process's environment less the key variables, but for those in `keep`."""
    from faceveil.storage.keys import SECRET_ENV

    return {k: v for k, v in os.environ.items() if k not in SECRET_ENV or k in keep}


def _is_restore(deployment: dict) -> bool:
    return str(deployment.get("entrypoint") or "").rsplit(".", 1)[-1].rsplit(":", 1)[-1] == RESTORE_FLOW


def _write_private(path: Path, text: str) -> None:
    """`text` in `path`, readable by this user only (0600 from its creation on)."""
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)


def _pythonpath() -> str:
    """The repository first: flow runs, and the Dask workers they start, import the served code."""
    rest = os.environ.get("PYTHONPATH")
    return str(REPO) + (os.pathsep + rest if rest else "")


def _port_free(port: int) -> None:
    import socket

    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            raise RuntimeError(
                f"port {port} on 127.0.0.1 is in use: choose another with --port, or set "
                "PREFECT_API_URL to use the server that runs there"
            ) from None


def _stop_tree(proc: subprocess.Popen, timeout: float) -> None:
    """SIGTERM to `proc`, then to whatever it started that is still there, SIGKILL to what remains."""
    import psutil

    try:
        family = psutil.Process(proc.pid).children(recursive=True)  # before the parent goes (they would be reparented)
    except psutil.Error:
        family = []
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    alive = [p for p in family if p.is_running()]
    for p in alive:
        try:
            p.terminate()
        except psutil.Error:
            pass
    _gone, alive = psutil.wait_procs(alive, timeout=10)
    for p in alive:
        try:
            p.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(alive, timeout=5)
