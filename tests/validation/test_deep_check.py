"""The deep leak check on outputs where the answer is known: a photo with one face masked inside its
recorded region and one left unmasked outside every region (1 leak of 2 faces); a video whose face
lies inside its recorded region in every frame (0 leaks, the bound computed by hand); and the
archive-level check: keyed by the output's SHA-256, a second check of unchanged outputs does nothing."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import skimage.data
from PIL import Image

from faceveil.hashing import sha256_file
from faceveil.models.detections import Detections
from faceveil.models.detectors import DetectorSettings, create_detector
from faceveil.ops.deep_check import read_results, run_check
from faceveil.storage import manifests
from faceveil.storage.paths import Location
from faceveil.validation.deep_check import check_output, recorded_regions, report_rows, spread_frames
from faceveil.validation.leak_bound import leak_upper_bound

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "review"))
from reviewclip import faces_per_frame, write_clip  # noqa: E402


def _face_box(rgb) -> np.ndarray:
    d = create_detector("centerface", DetectorSettings(threshold=0.3)).detect(rgb)
    assert len(d) == 1
    return d.boxes[0]


@pytest.fixture(scope="module")
def two_faces():
    """Two astronauts side by side; the left face blacked out (its region recorded), the right one shown."""
    one = skimage.data.astronaut()
    box = _face_box(one)
    out = np.concatenate([one, one], 1)
    x1, y1, x2, y2 = (int(v) for v in box)
    out[max(0, y1 - 40) : y2 + 40, max(0, x1 - 40) : x2 + 40] = 0
    return out, box


def _detections(state: Location, mid: str, per_frame: dict[int, list]) -> None:
    frames = {
        f: Detections(np.asarray(b, np.float32).reshape(-1, 4), np.ones(len(b), np.float32))
        for f, b in per_frame.items()
    }
    manifests.write_part(state, "detections", mid, manifests.detection_rows(mid, frames, lambda f: f, lambda f: f / 10))


def test_spread_frames():
    assert spread_frames(5, 300) == [0, 1, 2, 3, 4]
    assert spread_frames(1000, 3) == [0, 500, 999]
    assert spread_frames(0, 10) == [] and len(spread_frames(100_000)) == 300


def test_a_face_outside_the_recorded_regions_is_a_leak(two_faces, tmp_path):
    out, box = two_faces
    Image.fromarray(out).save(tmp_path / "p.png")
    state = Location(str(tmp_path / "state"))
    _detections(state, "m", {0: [list(box)]})
    row = {"media_id": "m", "width": out.shape[1], "height": out.shape[0], "settings_json": '{"pad": 0.4}'}
    r = check_output(str(tmp_path / "p.png"), "image", recorded_regions(state, row))
    assert (r["frames_checked"], r["faces_checked"], r["leaks"], r["leak_frames"]) == (1, 2, 1, [0])
    assert r["upper_95"] == pytest.approx(leak_upper_bound(1, 2)) and '"box"' in r["leak_boxes"]
    leak_x = float(r["leak_boxes"].split('"box": [')[1].split(",")[0])
    assert leak_x > 512  # the right (unmasked) face


def test_faces_inside_their_regions_are_no_leak_and_the_bound_is_computed_by_hand(tmp_path):
    clip = write_clip(tmp_path / "clip.mp4")
    boxes = {f: [list(b) for b in bs] for f, bs in faces_per_frame(clip).items() if len(bs)}
    assert len(boxes) == 12 and all(len(b) == 1 for b in boxes.values())
    state = Location(str(tmp_path / "state"))
    _detections(state, "v", boxes)
    row = {"media_id": "v", "width": 320, "height": 180, "settings_json": None}
    r = check_output(str(clip), "video", recorded_regions(state, row), frames=300)
    assert (r["frames_checked"], r["faces_checked"], r["leaks"], r["leak_frames"]) == (12, 12, 0, [])
    assert r["upper_95"] == pytest.approx(1 - 0.05 ** (1 / 12))  # Clopper-Pearson with no leak, by hand
    r = check_output(str(clip), "video", recorded_regions(state, row), frames=4)
    assert (r["frames_checked"], r["faces_checked"], r["leaks"]) == (4, 4, 0)
    bare = check_output(str(clip), "video", {}, frames=4)  # nothing recorded: the face leaks in every checked frame
    assert (bare["faces_checked"], bare["leaks"], bare["leak_frames"]) == (4, 4, [0, 4, 7, 11])


def test_the_archive_check_is_keyed_by_output_and_idempotent(two_faces, tmp_path):
    out, box = two_faces
    dest, state = Location(str(tmp_path / "out")), Location(str(tmp_path / "state"))
    dest.ensure_root()
    Image.fromarray(out).save(dest.path("leaky.png"))
    Image.fromarray(out[:, :512]).save(dest.path("masked.png"))
    common = {"kind": "image", "width": out.shape[1], "height": out.shape[0], "run_id": "r1"}
    sha = {rel: sha256_file(dest.path(rel)) for rel in ("leaky.png", "masked.png")}
    for mid, rel, status in (("a", "leaky.png", "released"), ("b", "masked.png", "ok"), ("c", "held.png", "leaked")):
        manifests.write_part(
            state,
            "media",
            mid,
            [
                {
                    **common,
                    "media_id": mid,
                    "rel_path": rel,
                    "status": status,
                    "output_path": rel,
                    "output_sha256": sha.get(rel),
                }
            ],
        )
        _detections(state, mid, {0: [list(box)]})
    first = run_check(dest, state)
    assert first["checked"] == 2 and [r["rel_path"] for r in first["rows"]] == ["leaky.png", "masked.png"]
    assert (first["faces_checked"], first["leaks"], first["leaked"]) == (3, 1, ["leaky.png"])
    assert first["upper_95"] == pytest.approx(leak_upper_bound(1, 3)) and first["errors"] == []
    stored = state.read_bytes("checks/deep.parquet")
    second = run_check(dest, state)
    assert second["checked"] == 0 and not any(r["fresh"] for r in second["rows"])
    assert state.read_bytes("checks/deep.parquet") == stored and second["leaked"] == ["leaky.png"]
    # the leaky output replaced by a masked one (a new SHA-256): only it is checked again
    Image.fromarray(out[:, :512]).save(dest.path("leaky.png"))
    row = manifests.read_part(state, "media", "a").to_pylist()[0]
    new = sha256_file(dest.path("leaky.png"))
    manifests.write_part(state, "media", "a", [{**row, "output_sha256": new, "width": 512}])
    third = run_check(dest, state)
    assert third["checked"] == 1 and third["leaks"] == 0 and third["faces_checked"] == 2 and not third["errors"]
    assert [r["output_sha256"] for r in read_results(state)] == [new, sha["masked.png"]]
    # a file replaced in DEST behind the manifest: checked again, and its changed SHA-256 is an error
    Image.fromarray(out).save(dest.path("masked.png"))
    fourth = run_check(dest, state)
    assert fourth["checked"] == 1 and fourth["leaked"] == ["masked.png"]
    assert "masked.png: its SHA-256 is not the media manifest's" in fourth["errors"][0]
    assert run_check(dest, state, frames=600)["checked"] == 2  # more frames asked: checked again
    # the run's report shows the latest results, the leaking media marked
    from faceveil.validation.report import render_html

    shown = report_rows(state)
    assert [r["leaks"] for r in shown] == [0, 1] and isinstance(shown[0]["checked_at"], str)
    page = render_html({"run_id": "x", "deep_check": shown})
    assert "deep check of published media (latest)" in page and "all: 3 faces checked, 1 leak(s)" in page
    assert "<tr class=fail><td>masked.png</td>" in page
    # the public tree holds no check results
    assert not any(p.startswith("checks") for p in dest.list_files())


def test_a_missing_output_is_an_error_naming_the_file(tmp_path):
    dest, state = Location(str(tmp_path / "out")), Location(str(tmp_path / "state"))
    dest.ensure_root()
    manifests.write_part(
        state,
        "media",
        "a",
        [
            {
                "media_id": "a",
                "rel_path": "gone.mp4",
                "kind": "video",
                "status": "ok",
                "output_path": "gone.mp4",
                "output_sha256": "x",
            }
        ],
    )
    r = run_check(dest, state)
    assert r["errors"] and "gone.mp4" in r["errors"][0]
    with pytest.raises(FileNotFoundError, match="no media manifest"):
        run_check(dest, Location(str(tmp_path / "nothing")))
