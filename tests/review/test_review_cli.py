"""`faceveil review DEST`: a bad archive is a clear error naming the file; a good one is served on
127.0.0.1 only, at a URL with a fresh token, and answers 403 without it."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import httpx

from faceveil.cli import main
from faceveil.cli.exits import EXIT_USAGE
from faceveil.storage import manifests
from faceveil.storage.paths import Location
from faceveil.storage.state import default_state_url


def test_an_archive_without_a_media_manifest_is_a_clear_error(tmp_path, capsys):
    assert main(["review", str(tmp_path / "nothing-here")]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "no media manifest" in err and "nothing-here" in err


def _serve(dest, env) -> tuple[subprocess.Popen, str]:
    p = subprocess.Popen(
        [sys.executable, "-m", "faceveil.cli", "review", str(dest)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    line = p.stdout.readline()
    assert line.startswith("review page: http://127.0.0.1:"), (line, p.stderr.read() if p.poll() is not None else "")
    return p, line.split(": ", 1)[1].strip()


def test_served_on_loopback_with_a_fresh_token(tmp_path):
    dest = tmp_path / "out"
    state = Location(default_state_url(str(dest)))
    manifests.write_part(
        state,
        "media",
        "m1",
        [
            {
                "media_id": "m1",
                "rel_path": "a.jpg",
                "kind": "image",
                "status": "failed",
                "reason": "cannot be read: truncated",
            }
        ],
    )
    env = {k: v for k, v in os.environ.items() if k != "FACEVEIL_KEY"}
    urls = []
    for _ in range(2):
        p, url = _serve(dest, env)
        try:
            base, token = url.split("/?token=")
            assert len(token) >= 32
            for _ in range(50):
                try:
                    r = httpx.get(f"{base}/api/queue", params={"token": token}, timeout=5)
                    break
                except httpx.ConnectError:
                    time.sleep(0.1)
            assert r.status_code == 200 and r.json()["keyed"] is False
            assert r.json()["media"][0]["reason"] == "cannot be read: truncated"
            assert httpx.get(f"{base}/api/queue", timeout=5).status_code == 403
        finally:
            p.terminate()
            p.wait(10)
        urls.append(token)
    assert urls[0] != urls[1]
