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
    return pd.DataFrame(
        {
            "media": [f"p{i}.jpg" for i in range(n)],
            "media_id": [f"m{i}" for i in range(n)],
            "face_index": 0,
            "surrogate_id": [f"{i:016x}" for i in range(n)],
            "method": "replace",
            "identity_cosine": cos + 0.05 * rng.standard_normal(n),
            "pose_error_deg": 3.0,
            "skin_delta_e": 1.5,
            "detector_score": score,
            "face_size": 80.0,
            "sharpness": np.linspace(0.1, 1.9, n),
            "seconds": 2.0,
        }
    )


def _measured(n=20, refs=8):
    """measure_faces's results for n photos of one face each (the first `refs` with blur and solid
    references): originals spread in a few directions of dlib's space, replaced faces shifted, blurred
    and filled faces collapsed to one point each."""
    rng = np.random.default_rng(1)
    unit = lambda v: v / np.linalg.norm(v, axis=-1, keepdims=True)  # noqa: E731
    base, axes = unit(rng.standard_normal(128)), rng.standard_normal((6, 128)) * 0.15
    orig = unit(base + rng.standard_normal((n, 6)) @ axes)
    out = [
        {
            "rows": [{}],
            "vectors": {
                "original": orig[i : i + 1],
                "replaced": unit(orig[i : i + 1] + 0.1 * axes[0] + 0.05 * rng.standard_normal(128)),
            },
        }
        for i in range(n)
    ]
    for i in range(refs):
        out[i]["vectors"].update(
            blur=unit(base + 0.4 * axes[1] + 0.01 * rng.standard_normal((1, 128))),
            solid=unit(base - 0.8 * axes[2] + 0.001 * rng.standard_normal((1, 128))),
        )
    return out


def _info(faces):
    return {
        "run_id": "r1",
        "src": "src",
        "dest": "<dest>",
        "faceveil_version": "0",
        "created_at": "now",
        "photos": 21,
        "failed": 0,
        "photos_without_faces": 1,
        "without_faces": ["empty.jpg"],
        "metrics": {
            **datasheet.publication_metrics(faces, 0.92, 0.85),
            "realism": datasheet.realism_metrics(faces, _measured(len(faces))),
        },
        "generator": {
            "name": "dcgan-digiface",
            "weights_id": "sha256:abc",
            "licence": "non-commercial <research> only",
        },
        "contracts": {"success": True, "failures": [], "results": []},
    }


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


def test_realism_against_other_peoples_faces():
    faces = _faces()
    faces.loc[[2, 15], "surrogate_id"] = "shared"  # one person in a test photo and a later one
    r = datasheet.realism_metrics(faces, _measured())
    assert r["space"].startswith("dlib") and r["faces"] == 8 and r["reference_faces"] == 11
    fd = r["fd"]
    assert set(fd) == {"replaced", "real", "blur", "solid"}
    assert fd["real"] < fd["replaced"] < fd["blur"] and fd["real"] < fd["solid"]
    assert r["sharpness_median"] == pytest.approx(1.0) and r["soft_share"] == pytest.approx(2 / 20)  # 0.1 and 0.195
    few = datasheet.realism_metrics(faces.iloc[:1], _measured(1, 1))
    assert few["fd"] == {} and few["faces"] == 1


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
    sheet_part = md.split("## Contact sheet")[1]  # the realism figures beside the replaced faces
    assert "Fréchet distance to real faces of other people (dlib-resnet 128-d" in sheet_part
    fd = info["metrics"]["realism"]["fd"]
    assert all(
        f"{k} {fd[m]:.3f}" in sheet_part
        for k, m in (("as published", "replaced"), ("blurred", "blur"), ("(floor)", "real"))
    )
    assert "| Sharpness: fine detail in the face" in sheet_part and "of the faces below 0.25 (soft)" in sheet_part
    assert "Fréchet distance" in page.split('id="contact-sheet"')[1]
    assert sorted(p.name for p in dest.iterdir()) == sorted(datasheet.PUBLIC_FILES)  # the datasheet only
    for text in (page, md):  # names, not the publisher's paths; no private file pointed at
        assert "/home/alice" not in text and str(tmp_path) not in text and "faces.parquet" not in text
    assert json.loads((state / paths["summary"]).read_text())["src"] == "/home/alice/private/faces"


def test_publish_command_grammar():
    a = build_parser().parse_args(
        [
            "publish",
            "in",
            "out",
            "--generator",
            "stylegan2",
            "--checkpoint",
            "g.pt",
            "--checkpoint-sha256",
            "ab",
            "--id-margin",
            "0.8",
            "--seed",
            "3",
            "--workers",
            "2",
            "--max-over-margin",
            "5",
        ]
    )
    assert a.max_over_margin == 5
    assert (a.command, a.generator, a.checkpoint, a.id_margin, a.seed, a.workers) == (
        "publish",
        "stylegan2",
        "g.pt",
        0.8,
        3,
        2,
    )


def test_datasheet_renders_in_headless_chromium(tmp_path):
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if not exe:
        pytest.skip("chromium not installed; datasheet rendering not checked")
    crops = [np.full((96, 96, 3), 40 * k + 30, np.uint8) for k in range(3)]
    paths = datasheet.write_datasheet(
        Location(str(tmp_path / "out")),
        Location(str(tmp_path / "state")),
        _info(_faces()),
        datasheet.contact_sheet(crops),
    )
    url = (tmp_path / "out" / paths["html"]).as_uri()
    base = [
        exe,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        f"--user-data-dir={tmp_path / 'profile'}",
    ]
    dom = subprocess.run(
        [*base, "--dump-dom", url],
        env={**os.environ, "HOME": str(tmp_path)},
        timeout=120,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    for sid in ("figures", "licence", "contact-sheet", "files"):
        assert re.search(rf'<section id="{sid}">', dom), sid
    assert "data:image/png;base64," in dom and "<script" not in dom
