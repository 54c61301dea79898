"""The HTML run report: escaping, missing sections, storage round trip, plots, and a headless-Chromium render."""

from __future__ import annotations

import base64
import copy
import io
import json
import math
import os
import re
import shutil
import subprocess
import time

import numpy as np
import pytest
from PIL import Image

from faceveil.storage.paths import Location
from faceveil.validation.report import SECTIONS, load_report, plots, render_html, write_report

HOSTILE = "<script>alert(1)</script>.jpg"
RUN_ID = "20261123T143000Z-1a2b3c"


def _png_b64(colour=(200, 80, 40)) -> str:
    img = Image.new("RGB", (64, 48), colour)
    img.paste((20, 20, 20), (16, 12, 48, 36))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def make_report() -> dict:
    video = {
        "path": "a/clip.mp4",
        "kind": "video",
        "status": "ok",
        "reason": None,
        "input_sha256": "1" * 64,
        "output_path": "a/clip.mp4",
        "output_sha256": "2" * 64,
        "frames": 630,
        "faces": 868,
        "tracks": 7,
        "frames_with_faces": 600,
        "frames_filled": 20,
        "frames_redacted": 0,
        "has_audio_in": True,
        "has_audio_out": True,
        "leak_rate": 0.0,
        "leak_faces": 0,
        "reid_rate": 0.0,
        "reid_checked": 21,
        "background_psnr": math.inf,
        "background_ssim": 0.99,
        "face_ssim": 0.3,
    }
    video2 = {
        **video,
        "path": "b/talk.mp4",
        "output_path": "b/talk.mp4",
        "frames": 300,
        "leak_rate": 0.5,
        "leak_faces": 3,
        "reid_rate": float("nan"),
        "background_psnr": 48.2,
    }
    image = {
        "path": HOSTILE,
        "kind": "image",
        "status": "failed",
        "reason": "truncated or corrupt",
        "input_sha256": "3" * 64,
        "output_path": None,
        "output_sha256": None,
        "frames": None,
        "faces": None,
        "tracks": None,
        "has_audio_in": None,
        "has_audio_out": None,
        "leak_rate": None,
        "reid_rate": None,
    }
    return {
        "run_id": RUN_ID,
        "flow": "anonymize_archive",
        "status": "partial",
        "started_at": "2026-11-23T14:30:00+00:00",
        "finished_at": "2026-11-23T14:30:12+00:00",
        "seconds": 12.3,
        "faceveil_version": "0.1.0",
        "code_version": None,
        "src": "/path/in",
        "dest": "/path/out",
        "settings": {"method": "mosaic", "threshold": 0.5, "note": "<b>bold</b>"},
        "models": [
            {"role": "detector", "name": "centerface", "weights": "sha256:" + "a" * 64},
            {"role": "embedder", "name": "dlib-resnet", "weights": "sha256:" + "b" * 64},
        ],
        "counts": {"media": 3, "ok": 2, "failed": 1, "already_done": 0, "frames": 930, "faces": 1200, "tracks": 14},
        "media": [video, video2, image],
        "coverage": {
            "a/clip.mp4": {
                "n_frames": 630,
                "fps": 30.0,
                "detected": [[0, 300], [320, 630]],
                "filled": [[300, 320]],
                "redacted": [],
            },
            "b/talk.mp4": {
                "n_frames": 300,
                "fps": 25.0,
                "detected": [[10, 200]],
                "filled": [],
                "redacted": [[200, 240]],
            },
            HOSTILE: {"n_frames": 1, "fps": None, "detected": [[0, 1]], "filled": [], "redacted": []},
        },
        "privacy": {
            "leak": {"frames_checked": 21, "faces_found": 3, "faces_anonymized": 30, "rate": 0.1, "threshold": 0.3},
            "reid": {"faces_checked": 25, "matches": 1, "rate": 0.04, "threshold": 0.92, "mean_cosine": 0.41},
            "identity_stability": None,
            "surrogate_consistency": None,
        },
        "utility": {
            "background_psnr": math.inf,
            "background_ssim": 0.995,
            "face_ssim": 0.31,
            "still_face_rate": 0.0,
            "pose_error": None,
        },
        "contracts": {
            "success": False,
            "results": [
                {
                    "table": "detections",
                    "expectation": "expect_column_values_to_be_between",
                    "column": "score",
                    "success": True,
                    "unexpected": 0,
                },
                {
                    "table": "tracks",
                    "expectation": "expect_column_values_to_not_be_null",
                    "column": "track_id",
                    "success": False,
                    "unexpected": 4,
                },
            ],
        },
        "keys": {
            "vault_key_fingerprint": "ab12cd34ef56",
            "reversible": True,
            "index": True,
            "secret": "MUST-NOT-APPEAR",
        },
        "access_log": [
            {
                "seq": 1,
                "time": "2026-11-24T09:00:00+00:00",
                "actor": "alice",
                "action": "restore",
                "reason": "court order 17",
                "matched": ["clip.mp4#3"],
                "key_fingerprint": "ab12cd34ef56",
            }
        ],
        "thumbnails": [
            {"path": "a/clip.mp4", "frame": 300, "png_base64": _png_b64()},
            {"path": HOSTILE, "frame": 0, "png_base64": _png_b64((40, 90, 200))},
            {"path": "x", "frame": 0, "png_base64": '"><script>alert(2)</script>'},
        ],
        "mlflow": {"tracking_uri": "sqlite:///tmp/mlflow.db", "experiment": "faceveil", "run_id": "abc123"},
        "failures": [{"path": HOSTILE, "reason": "truncated or corrupt"}],
        "not_media": [{"path": "notes.txt", "reason": "not a media file"}],
    }


def _section(page: str, sid: str) -> str:
    m = re.search(rf'<section id="{re.escape(sid)}">(.*?)</section>', page, re.S)
    assert m, f"section {sid!r} missing"
    return m.group(1)


def test_html_has_every_section_and_escapes_user_data():
    page = render_html(make_report())
    for sid, title in SECTIONS:
        assert f"<h2>{title}</h2>" in _section(page, sid)
    assert "<script" not in page.lower() and "alert(2)" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;.jpg" in _section(page, "media")
    assert "&lt;b&gt;bold&lt;/b&gt;" in _section(page, "settings")
    assert not re.search(r"(src|href)=\"(https?:)?//", page), "no external URL"
    assert page.count('src="data:image/png;base64,') == 2 + 2  # two plots, two valid thumbnails
    assert RUN_ID in _section(page, "summary") and "partial" in _section(page, "summary")
    assert "MUST-NOT-APPEAR" not in page and "ab12cd34ef56" in _section(page, "keys")
    contracts = _section(page, "contracts")
    assert contracts.index("track_id") < contracts.index("score"), "failures first"
    assert re.search(r"<tr class=fail><td>tracks</td>", contracts)
    privacy = _section(page, "privacy")  # media with any leak or re-identification are highlighted
    assert "<tr><td>a/clip.mp4</td>" in privacy and "<tr class=fail><td>b/talk.mp4</td>" in privacy
    utility = _section(page, "utility")
    assert "<td>inf</td>" in utility and "<td>—</td>" in utility
    coverage = _section(page, "coverage")
    assert "a/clip.mp4" in coverage and "alert" not in coverage, "images are left out of coverage"
    assert "<td>630</td><td>30</td><td>610</td><td>20</td><td>0</td><td>0</td>" in coverage
    assert 'id="gate-off"' not in page  # the gate was on
    off = render_html({**make_report(), "leak_gate": {"on": False, "off_because": "--max-leak 100%: <all>"}})
    assert 'id="gate-off">LEAK GATE OFF: --max-leak 100%: &lt;all&gt;' in _section(off, "summary")


def test_missing_sections_say_not_measured():
    report = {k: v for k, v in make_report().items() if k not in ("utility", "thumbnails", "access_log")}
    report.update(contracts=None, mlflow=None, privacy=None, coverage={}, media=[], models=None, keys=None)
    page = render_html(report)
    for sid in ("contracts", "privacy", "utility", "coverage", "models", "keys", "access-log", "thumbnails", "mlflow"):
        assert "not measured" in _section(page, sid), sid
    assert "not measured" in render_html({"run_id": "x"})  # a bare dict renders too
    assert plots({"run_id": "x"}) == {}


def test_write_and_load_round_trip(tmp_path):
    dest = Location(str(tmp_path / "out"))
    report = make_report()
    rels = write_report(dest, report)
    assert rels == {"html": f"reports/{RUN_ID}.html", "json": f"reports/{RUN_ID}.json"}
    for rel in (*rels.values(), "reports/latest.html", "reports/latest.json"):
        assert dest.exists(rel), rel
    expected = json.loads(json.dumps(report, default=str))
    for got in (load_report(dest), load_report(dest, RUN_ID)):
        assert got["run_id"] == RUN_ID and got["media"][2]["path"] == HOSTILE
        assert got["utility"]["background_psnr"] == "inf" and got["counts"] == expected["counts"]  # strict JSON
    assert dest.read_bytes(rels["html"]) == dest.read_bytes("reports/latest.html")
    second = {**copy.deepcopy(report), "run_id": "20261124T000000Z-ffffff"}
    write_report(dest, second)
    assert load_report(dest)["run_id"] == second["run_id"] and load_report(dest, RUN_ID)["run_id"] == RUN_ID


def test_load_refuses_hostile_ids_and_names_the_missing_file(tmp_path):
    dest = Location(str(tmp_path / "out"))
    for bad in ("../x", "../../etc/passwd", "a/b", "x.json", ""):
        with pytest.raises(ValueError):
            load_report(dest, bad) if bad else write_report(dest, {"run_id": bad})
    with pytest.raises(FileNotFoundError, match="latest.json.*runs with a report: none"):
        load_report(dest)
    write_report(dest, make_report())
    with pytest.raises(FileNotFoundError, match=rf"nope\.json.*runs with a report: {RUN_ID}") as err:
        load_report(dest, "nope")
    assert str(tmp_path / "out" / "reports" / "nope.json") in str(err.value)


def test_plots_are_small_pngs():
    figs = plots(make_report())
    assert set(figs) == {"coverage", "privacy"}
    for name, png in figs.items():
        assert png.startswith(b"\x89PNG"), name
        img = Image.open(io.BytesIO(png))
        assert img.width <= 1000 and np.asarray(img.convert("L")).std() > 5, name


def _chromium() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if not exe:
        pytest.skip("chromium not installed (`make test` installs Debian's chromium); report rendering not checked")
    return exe


def test_report_renders_in_headless_chromium(tmp_path):
    exe = _chromium()
    dest = Location(str(tmp_path / "out"))
    html_file = tmp_path / "out" / write_report(dest, make_report())["html"]
    url, shot = html_file.as_uri(), tmp_path / "report.png"
    env = {**os.environ, "HOME": str(tmp_path)}
    base = [
        exe,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--hide-scrollbars",
        f"--user-data-dir={tmp_path / 'profile'}",
    ]
    t0 = time.perf_counter()
    subprocess.run(
        [*base, f"--screenshot={shot}", "--window-size=1280,4000", url],
        env=env,
        timeout=60,
        check=True,
        capture_output=True,
    )
    dom = subprocess.run(
        [*base, "--dump-dom", url], env=env, timeout=60, check=True, capture_output=True, text=True
    ).stdout
    seconds = time.perf_counter() - t0
    print(f"chromium screenshot of the report: {shot} ({seconds:.1f} s for both renders)")
    for sid, title in SECTIONS:
        assert re.search(rf'<section id="{sid}"><h2>{re.escape(title)}</h2>', dom), sid
    assert RUN_ID in dom and "&lt;script&gt;alert(1)&lt;/script&gt;.jpg" in dom and "<script" not in dom
    assert shot.stat().st_size > 20_000
    img = np.asarray(Image.open(shot).convert("RGB"))
    assert img.shape[:2] == (4000, 1280) and img.std() > 20
    colours = np.unique(img.astype(np.uint32) @ np.array([65536, 256, 1], np.uint32))
    assert len(colours) > 50, "screenshot is nearly a single colour"
