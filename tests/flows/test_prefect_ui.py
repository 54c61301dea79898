"""The flow run in the Prefect UI: a Prefect server with its UI on 127.0.0.1 (its own database), a
small anonymize run against it, and the run's page (/runs/flow-run/ID) in headless Chromium. The
page must show that run (its name and state in the rendered DOM) and the screenshot must not be
blank. With FACEVEIL_SCREENSHOT_DIR set, a copy shrunk for the README (Pillow: 1000 px wide, 256
colours) is written there as prefect-ui.png; docs/prefect-ui.png is one such copy."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from faceveil.config import AnonymizeConfig
from faceveil.flows.launch import run_anonymize
from faceveil.flows.runtime import LocalPrefectServer, free_port

pytestmark = pytest.mark.slow  # a Prefect server with its UI, a flow run, Chromium


def _chromium() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if not exe:
        pytest.skip(
            "chromium not installed (`make test` installs Debian's chromium); the Prefect UI screenshot is not taken"
        )
    return exe


def _latest_run(api_url: str, flow_name: str):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName
    from prefect.client.schemas.sorting import FlowRunSort
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: api_url}), get_client(sync_client=True) as client:
        runs = client.read_flow_runs(
            flow_filter=FlowFilter(name=FlowFilterName(any_=[flow_name])), sort=FlowRunSort.START_TIME_DESC, limit=1
        )
    assert runs, f"no {flow_name} run on the server"
    return runs[0]


def shrink(png: Path, out: Path, width: int = 1000) -> int:
    """`png` at `width` pixels wide, 256 colours, as `out`; its size in bytes."""
    from PIL import Image

    img = Image.open(png).convert("RGB")
    img = img.resize((width, round(img.height * width / img.width)), Image.LANCZOS)
    img.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(out, optimize=True)
    return out.stat().st_size


def test_flow_run_page_in_the_prefect_ui(sample_archive, tmp_path, monkeypatch, figures):
    from PIL import Image

    exe = _chromium()
    src, dest = tmp_path / "src", tmp_path / "out"
    (src / "lobby").mkdir(parents=True)
    shutil.copy(sample_archive / "cameras/lobby/clip_001.mp4", src / "lobby/clip_001.mp4")
    shutil.copy(sample_archive / "photos/astronaut.jpg", src / "lobby/astronaut.jpg")
    port = free_port()
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path / "prefect"))  # the server's own database
    t0 = time.perf_counter()
    server = LocalPrefectServer(port, ui=True)
    try:
        server.wait_ready(timeout=180)
        monkeypatch.setenv("PREFECT_API_URL", server.url)
        summary = run_anonymize(AnonymizeConfig.of(src=str(src), dest=str(dest), workers=1))
        assert summary["ok"] == 2 and summary["failed"] == 0, summary
        run = _latest_run(server.url, "anonymize_archive")
        assert run.state.is_completed()
        url, shot = f"http://127.0.0.1:{port}/runs/flow-run/{run.id}", tmp_path / "prefect-ui.png"
        t1 = time.perf_counter()
        base = [
            exe,
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--hide-scrollbars",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--window-size=1400,900",
            "--virtual-time-budget=15000",
        ]
        env = {**os.environ, "HOME": str(tmp_path)}
        subprocess.run([*base, f"--screenshot={shot}", url], env=env, timeout=90, check=True, capture_output=True)
        dom = subprocess.run(
            [*base, "--dump-dom", url], env=env, timeout=90, check=True, capture_output=True, text=True
        ).stdout
        chromium_s = time.perf_counter() - t1
    finally:
        server.stop()
    assert run.name in dom and "Completed" in dom, dom[-2000:]  # the run's own page, rendered with its data
    img = np.asarray(Image.open(shot).convert("RGB"))
    assert img.shape[:2] == (900, 1400)
    colours = np.unique(img.astype(np.uint32) @ np.array([65536, 256, 1], np.uint32))
    packed = img.astype(np.uint32) @ np.array([65536, 256, 1], np.uint32)
    background = np.bincount(packed.ravel()).argmax()
    drawn = float((packed != background).mean())  # the dark theme's page is mostly background (std ~20)
    assert img.std() > 5 and len(colours) > 50 and drawn > 0.02, (img.std(), len(colours), drawn)  # not blank
    kept = ""
    if os.environ.get("FACEVEIL_SCREENSHOT_DIR"):
        out = Path(os.environ["FACEVEIL_SCREENSHOT_DIR"]).expanduser()
        out.mkdir(parents=True, exist_ok=True)
        size = shrink(shot, out / "prefect-ui.png")
        assert size < 300_000, size
        kept = f"; kept as {out / 'prefect-ui.png'} ({size // 1000} kB)"
    figures.append(
        f"Prefect UI screenshot of flow run {run.name}: {time.perf_counter() - t0:.1f} s in all "
        f"(Chromium {chromium_s:.1f} s for the screenshot and the DOM){kept}"
    )
