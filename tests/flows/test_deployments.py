"""Scheduled runs end to end: `faceveil serve --config` (a Prefect server on a free port with basic auth,
the work pool, `prefect deploy` of deployments/prefect.yaml, a process worker): the API refuses a call
without credentials, takes one with those of the 0600 file serve names; the restore deployment is not
registered while the config does not allow it. Three runs of the nightly deployment triggered by
`run_deployment` (reversible, indexing, the key by file reference): all media, then none, then the one
added; then the report deployment; then the config's [restore] table is turned on and registered (a
Service against the running server, as an external one), a restore into an `out` outside its roots
fails with nothing logged or written and one inside works; turned off again, the restore deployment
is deleted. Afterwards no byte of the master key, of a track's data key, of the API secret or of a
Dask TLS key is in Prefect's home (database, logs), and nothing serve started is left running."""

import base64
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest

from faceveil.flows.runtime import free_port

from faceveil.storage.keys import SECRET_ENV, MasterKey, encode_key, write_key_file

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from private import private  # noqa: E402

pytestmark = pytest.mark.slow  # a Prefect server, a worker, flow runs with Dask clusters

NIGHTLY = "scheduled_anonymize/archive-nightly"


class _Serve:
    """`faceveil serve` in a subprocess, its output collected line by line."""

    def __init__(self, config: Path, home: Path):
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in ("PREFECT_API_URL", "PREFECT_API_AUTH_STRING") and k not in SECRET_ENV
        }
        env |= {"PREFECT_HOME": str(home), "PREFECT_WORKER_QUERY_SECONDS": "1"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "faceveil.cli", "serve", "--config", str(config), "--port", str(free_port())],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    @property
    def text(self) -> str:
        return "\n".join(self.lines)

    def wait_for(self, pattern: str, timeout: float) -> re.Match:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in self.lines:
                if m := re.search(pattern, line):
                    return m
            if self.proc.poll() is not None:
                break
            time.sleep(0.2)
        raise AssertionError(f"serve did not print {pattern!r}:\n{self.text[-4000:]}")

    def stop(self, timeout: float = 120) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.reader.join(10)
        return self.proc.returncode


def _trigger(name: str, config: Path, fails: bool = False, **parameters):
    """Runs deployment `name` and waits for it: (the flow run, wall seconds from trigger to its end)."""
    from prefect.deployments import run_deployment

    started = time.monotonic()
    run = run_deployment(name, parameters=parameters or None, timeout=900, poll_interval=1, as_subflow=False)
    wall = time.monotonic() - started
    assert run.state is not None and (run.state.is_failed() if fails else run.state.is_completed()), (
        f"{run.name}: {run.state}"
    )
    assert run.parameters == {"config_path": str(config.resolve()), **parameters}  # the file's path, no secret
    return run, wall


def _run(name: str, config: Path, dest: Path) -> tuple[dict, float, float]:
    """(summary.json, wall seconds from trigger to completion, the flow run's own seconds)."""
    run, wall = _trigger(name, config)
    return (
        json.loads((private(dest) / "summary.json").read_text()),
        wall,
        (run.end_time - run.start_time).total_seconds(),
    )


def _key_forms(key: MasterKey) -> dict[str, bytes]:
    raw = key._b
    return {
        "raw": raw,
        "hex": raw.hex().encode(),
        "HEX": raw.hex().upper().encode(),
        "base64": base64.b64encode(raw).rstrip(b"="),
        "base64url": base64.urlsafe_b64encode(raw).rstrip(b"="),
        "encoded": encode_key(key).encode(),
    }


def test_nightly_deployment_runs_incrementally_and_prefect_never_holds_the_key(
    sample_archive, tmp_path, figures, monkeypatch
):
    from prefect.settings import PREFECT_API_AUTH_STRING, PREFECT_API_URL, temporary_settings

    src, dest = tmp_path / "src", tmp_path / "dest"
    photos = sorted((sample_archive / "photos").iterdir())
    for rel in ["cameras/lobby/clip_001.mp4", *(f"photos/{p.name}" for p in photos[:2])]:
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(sample_archive / rel, src / rel)
    key = MasterKey.generate()
    write_key_file(tmp_path / "archive.key", key)
    config = tmp_path / "archive.toml"
    config.write_text('src = "src"\ndest = "dest"\nreversible = true\nworkers = 1\n\n[key]\nfile = "archive.key"\n')
    home = tmp_path / "prefect-home"
    serve = _Serve(config, home)
    family: set[int] = set()
    try:
        api = serve.wait_for(
            r"Prefect API: (http://127\.0\.0\.1:\d+/api) \(server started here; .*basic auth\)", 300
        ).group(1)
        auth_file = Path(serve.wait_for(r"API credentials: (\S+) \(user:password, mode 0600", 10).group(1))
        serve.wait_for(r"ready;", 300)
        assert NIGHTLY in serve.text and "scheduled_report/report" in serve.text
        assert "scheduled_check/check-nightly (cron '0 4 * * *' UTC" in serve.text  # the deep check, registered too
        assert "scheduled_restore/restore (" not in serve.text  # the config has no [restore] table
        assert (
            "deployment scheduled_restore/restore: not registered (the config's [restore] deploy is not true)"
            in serve.text
        )
        assert "cron '0 2 * * *' UTC" in serve.text and f"fingerprint {key.fingerprint}" in serve.text
        assert re.search(r"UI: http://127\.0\.0\.1:\d+$", serve.text, re.M)
        auth = _check_api_auth(api, auth_file, home)
        assert auth.split(":", 1)[1] not in serve.text
        monkeypatch.setenv("PREFECT_API_AUTH_STRING", auth)  # for the Service below (an external server to it)
        monkeypatch.setenv("PREFECT_API_URL", api)
        with temporary_settings(updates={PREFECT_API_URL: api, PREFECT_API_AUTH_STRING: auth}):
            first, wall1, own1 = _run(NIGHTLY, config, dest)
            family |= {p.pid for p in psutil.Process(serve.proc.pid).children(recursive=True)}
            assert (first["ok"], first["already_done"], first["failed"]) == (3, 0, 0), first
            assert (private(dest) / "vault/keyinfo.json").exists() and (private(dest) / "index").is_dir()
            again, wall2, own2 = _run(NIGHTLY, config, dest)
            assert (again["ok"], again["already_done"], again["failed"]) == (0, 3, 0), again
            added = f"photos/{photos[2].name}"
            shutil.copy(photos[2], src / added)
            third, wall3, own3 = _run(NIGHTLY, config, dest)
            assert (third["ok"], third["already_done"], third["failed"]) == (1, 3, 0), third
            assert [Path(o).name for o in third["outputs"]] == [photos[2].name]
            _check_recorded_parameters(key, tmp_path / "archive.key")
            _check_secret_block_reference()
            # the on-demand deployments: a report rendered again, one photo restored (logged first)
            (private(dest) / "reports/latest.html").unlink()
            _, wall_report = _trigger("scheduled_report/report", config)
            assert (private(dest) / "reports/latest.html").is_file()
            # restores by deployment turned on in the config: [restore] deploy = true, roots = ["restored"]
            config.write_text(config.read_text() + '\n[restore]\ndeploy = true\nroots = ["restored"]\n')
            said = _register(config, tmp_path / "service-logs", restore=True)
            assert "authenticated with $PREFECT_API_AUTH_STRING" in said and "WARNING" not in said, said
            assert "deployment: scheduled_restore/restore (on demand" in said, said
            logged_before = _access_log_files(dest)
            refused, _ = _trigger(
                "scheduled_restore/restore",
                config,
                fails=True,
                out=str(tmp_path / "elsewhere"),
                reason="outside the roots",
                media=[f"photos/{photos[0].name}"],
            )
            assert "is not inside an allowed restore root" in refused.state.message, refused.state.message
            assert _access_log_files(dest) == logged_before and not (tmp_path / "elsewhere").exists()
            _, wall_restore = _trigger(
                "scheduled_restore/restore",
                config,
                out=str(tmp_path / "restored"),
                reason="deployment test",
                media=[f"photos/{photos[0].name}"],
            )
            assert (tmp_path / "restored/photos" / photos[0].name).is_file()
            _check_restore_logged(dest, f"photos/{photos[0].name}")
            said = _register(config, tmp_path / "service-logs", restore=False)  # turned off: the old one goes
            assert (
                "scheduled_restore/restore: not registered (the config's [restore] deploy is not true); the one "
                "registered before was deleted"
                in said
                and "scheduled_restore/restore (" not in said
            ), said
        family |= {p.pid for p in psutil.Process(serve.proc.pid).children(recursive=True)}
    finally:
        code = serve.stop()
    assert code == 0 and "stopped" in serve.lines[-1], serve.text[-3000:]
    assert not [p for p in family if _running(p)], "serve left processes running"
    figures.append(
        f"scheduled runs (faceveil serve, 2 photos + 1 video, reversible + index, 1 Dask worker): "
        f"run 1 {first['ok']} media in {wall1:.1f} s (flow run {own1:.1f} s), run 2 {again['ok']} media "
        f"({again['already_done']} already done) in {wall2:.1f} s ({own2:.1f} s), run 3 {third['ok']} "
        f"added in {wall3:.1f} s ({own3:.1f} s); report {wall_report:.1f} s, restore of a photo {wall_restore:.1f} s"
    )
    # Prefect's home: its database (flow run parameters, logs, states) and serve's logs of the server and worker
    files = [p for p in home.rglob("*") if p.is_file()]
    assert any(p.name.startswith("prefect.db") for p in files)
    assert not auth_file.exists()  # removed at stop: the secret died with the server
    needles = {
        **_key_forms(key),
        **_data_key_forms(dest, key),
        "API secret": auth.split(":", 1)[1].encode(),
        "API basic token": base64.b64encode(auth.encode()),
        "a Dask TLS key": b"PRIVATE KEY",
    }
    assert len(needles) > len(_key_forms(key))
    found = [(p.name, form) for p in files for form, needle in needles.items() if needle in p.read_bytes()]
    assert not found, f"the master key or a data key is in Prefect's files: {found}"
    db = b"".join(p.read_bytes() for p in files if p.name.startswith("prefect.db"))
    assert key.fingerprint.encode() in db  # the control: the runs' parameters are there (the vault's public lock)


def _check_api_auth(api: str, auth_file: Path, home: Path) -> str:
    """The started server refuses API calls without (or with wrong) credentials, takes those of
    `auth_file` (0600, under PREFECT_HOME), and its UI asks for them; their "user:password"."""
    import httpx

    assert auth_file.parent == home / "faceveil-serve" and auth_file.stat().st_mode & 0o777 == 0o600
    auth = auth_file.read_text().strip()
    user, password = auth.split(":", 1)
    assert len(password) >= 32
    body = {"limit": 10}
    assert httpx.get(f"{api}/health").status_code == 200  # the control: the server answers
    assert httpx.post(f"{api}/deployments/filter", json=body).status_code == 401
    assert httpx.post(f"{api}/flows/filter", json=body, auth=(user, password + "x")).status_code == 401
    ok = httpx.post(f"{api}/deployments/filter", json=body, auth=(user, password))
    assert ok.status_code == 200 and "archive-nightly" in {d["name"] for d in ok.json()}
    assert httpx.get(api.removesuffix("/api") + "/ui-settings").json()["auth"] == "BASIC"  # the UI's login page
    return auth


def _register(config: Path, logs: Path, restore: bool) -> str:
    """What a Service (no worker) registering `config`'s deployments on the server of $PREFECT_API_URL said."""
    from faceveil.flows.service import Service

    lines: list[str] = []
    service = Service(str(config), worker=False, restore=restore, logs=logs)
    try:
        service.start(lines.append)
    finally:
        service.stop()
    return "\n".join(lines)


def _access_log_files(dest: Path) -> list[str]:
    folder = private(dest) / "access_log"
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")) if folder.is_dir() else []


def _data_key_forms(dest: Path, key: MasterKey) -> dict[str, bytes]:
    """Every track's data key (the restore run unwrapped some in its flow process), raw, hex, base64."""
    from faceveil.storage.paths import Location
    from faceveil.storage.vault import track_keys

    archive = Location(str(private(dest)))
    media = [p.stem for p in (private(dest) / "vault/keys").glob("*.parquet")]
    keys = [k for mid in media for k in track_keys(archive, key, mid)[0].values()]
    return {
        f"data key {i} {form}": needle
        for i, k in enumerate(keys)
        for form, needle in (("raw", k), ("hex", k.hex().encode()), ("base64", base64.b64encode(k).rstrip(b"=")))
    }


def _check_restore_logged(dest: Path, media: str) -> None:
    from faceveil.storage import access_log
    from faceveil.storage.paths import Location

    rows = [r for r in access_log.tail(Location(str(private(dest))), 10) if r["action"] == "restore"]
    outcomes = [access_log.details(r).get("outcome") for r in rows]
    assert outcomes == ["intent", "done"], outcomes
    assert access_log.details(rows[0])["media"] == [media] and rows[0]["reason"] == "deployment test"


def _running(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _check_recorded_parameters(key: MasterKey, key_file: Path) -> None:
    """The anonymize subflows were given the key's reference and public lock, and no form of the key."""
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs()
    subflows = [r for r in runs if r.parameters.get("key_ref") is not None]
    # runs 1 and 3 anonymize; run 2 finds nothing new and starts no anonymize_archive flow (nor cluster)
    assert len(subflows) == 2 and all(r.parameters["key_ref"] == {"file": str(key_file)} for r in subflows)
    text = json.dumps([r.parameters for r in runs]).encode()
    assert not [form for form, needle in _key_forms(key).items() if needle in text]


def _check_secret_block_reference() -> None:
    """A key kept in a Prefect Secret block is found by its name (resolved in the process that asks)."""
    from prefect.blocks.system import Secret

    from faceveil.flows.key_refs import resolve_key

    other = MasterKey.generate()  # not the archive's: the block's value is the server's to keep
    Secret(value=encode_key(other)).save("faceveil-test-key", overwrite=True)
    assert resolve_key({"prefect_secret": "faceveil-test-key"}).fingerprint == other.fingerprint
    with pytest.raises(ValueError, match="Prefect secret block 'no-such-block' could not be loaded"):
        resolve_key({"prefect_secret": "no-such-block"})
