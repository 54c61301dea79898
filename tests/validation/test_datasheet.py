"""The publication's datasheet and its contract, without models or a flow."""
import json
import os
import re
import shutil
import subprocess

import cv2
import numpy as np
import pandas as pd
import pytest

from faceveil.cli.parser import build_parser
from faceveil.storage.paths import Location
from faceveil.validation import datasheet
from faceveil.validation.contracts import check_published_faces


def _faces(n=20, cos=0.6, score=0.9):
    rng = np.random.default_rng(0)
    return pd.DataFrame({"media": [f"p{i}.jpg" for i in range(n)], "media_id": [f"m{i}" for i in range(n)],
                         "face_index": 0, "surrogate_id": [f"{i:016x}" for i in range(n)],
                         "identity_cosine": cos + 0.05 * rng.standard_normal(n), "pose_error_deg": 3.0,
                         "skin_delta_e": 1.5, "detector_score": score, "face_size": 80.0, "seconds": 2.0})


def _info(faces):
    return {"run_id": "r1", "src": "src", "dest": "<dest>", "faceveil_version": "0", "created_at": "now",
            "photos": 21, "failed": 0, "photos_without_faces": 1, "without_faces": ["empty.jpg"],
            "metrics": datasheet.publication_metrics(faces, 0.92, 0.85),
            "generator": {"name": "dcgan-digiface", "weights_id": "sha256:abc", "licence": "non-commercial <research> only"},
            "contracts": {"success": True, "failures": [], "results": []}}


def test_metrics_and_contract():
    faces = _faces()
    m = datasheet.publication_metrics(faces, 0.92, 0.85)
    assert m["faces"] == 20 and m["reid_rate"] == 0 and m["still_detected"] == 1 and m["pose_error_deg"] == 3
    assert check_published_faces(faces, 0.85).success
    bad = _faces(score=0.1)
    bad.loc[0, "identity_cosine"] = 0.95
    bad.loc[1, "seconds"] = np.inf
    failed = " ".join(check_published_faces(bad, 0.85).failures)
    assert "identity_cosine" in failed and "detector_score" in failed and "seconds_finite" in failed
    assert "identity_cosine" not in " ".join(check_published_faces(bad, 0.85, max_over_margin=0.1).failures)
    assert datasheet.publication_metrics(faces.iloc[:0], 0.92, 0.85)["reid_rate"] is None


def test_datasheet_written_and_escaped(tmp_path):
    crops = [np.full((96, 96, 3), 20 * k, np.uint8) for k in range(8)]
    png = datasheet.contact_sheet(crops)
    sheet = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
    assert sheet.shape[:2] == (2 * 96 + 4, 6 * 96 + 5 * 4)  # 6 to a row, the last row padded
    dest, state = tmp_path / "pub", tmp_path / "pub.faceveil-private"
    info = {**_info(_faces()), "src": "/home/alice/private/faces", "dest": str(dest)}
    paths = datasheet.write_datasheet(Location(str(dest)), Location(str(state)), info, png)
    page = (dest / paths["html"]).read_text()
    md = (dest / paths["markdown"]).read_text()
    assert "data:image/png;base64," in page and "&lt;research&gt;" in page and "<research>" not in page
    assert "non-commercial <research> only" in md and "sha256:abc" in md and "| Faces replaced | 20 |" in md
    assert sorted(p.name for p in dest.iterdir()) == sorted(datasheet.PUBLIC_FILES)  # the datasheet only
    for text in (page, md):  # names, not the publisher's paths; no private file pointed at
        assert "/home/alice" not in text and str(tmp_path) not in text and "faces.parquet" not in text
    assert json.loads((state / paths["summary"]).read_text())["src"] == "/home/alice/private/faces"


def test_publish_command_grammar():
    a = build_parser().parse_args(["publish", "in", "out", "--generator", "stylegan2", "--checkpoint", "g.pt",
                                   "--checkpoint-sha256", "ab", "--id-margin", "0.8", "--seed", "3", "--workers", "2",
                                   "--max-over-margin", "5"])
    assert a.max_over_margin == 5
    assert (a.command, a.generator, a.checkpoint, a.id_margin, a.seed, a.workers) == ("publish", "stylegan2", "g.pt", 0.8, 3, 2)


def test_datasheet_renders_in_headless_chromium(tmp_path):
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if not exe:
        pytest.skip("chromium not installed; datasheet rendering not checked")
    crops = [np.full((96, 96, 3), 40 * k + 30, np.uint8) for k in range(3)]
    paths = datasheet.write_datasheet(Location(str(tmp_path / "out")), Location(str(tmp_path / "state")), _info(_faces()),
                                      datasheet.contact_sheet(crops))
    url = (tmp_path / "out" / paths["html"]).as_uri()
    base = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
            f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run([*base, "--dump-dom", url], env={**os.environ, "HOME": str(tmp_path)}, timeout=120,
                         check=True, capture_output=True, text=True).stdout
    for sid in ("figures", "licence", "contact-sheet", "files"):
        assert re.search(rf'<section id="{sid}">', dom), sid
    assert "data:image/png;base64," in dom and "<script" not in dom
