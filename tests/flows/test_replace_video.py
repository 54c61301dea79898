"""`anonymize --method replace` on a real clip of one person: one surrogate per track, so the replaced
face keeps one identity from frame to frame. The report's identity stability (mean cosine of the dlib
embeddings of consecutive checked surrogate faces along a track) is measured and reported, even on a
clip shorter than the checks' default spacing (a replace run checks at least 5 frames of a video)."""

import sys
from pathlib import Path
import json
import math
import shutil
import time

import pytest

from faceveil.config import AnonymizeConfig
from faceveil.flows.launch import run_anonymize
from faceveil.storage import manifests
from faceveil.storage.paths import Location

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from private import private  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.shared_data]  # a flow over ../shared/data (~40 s)

CLIP = "intel_asl_again.mp4"  # 2.6 s, 640x480, one person signing, facing the camera


def test_replace_keeps_one_identity_along_a_video_track(shared, prefect_server, tmp_path, figures):
    src, dest = tmp_path / "src", tmp_path / "out"
    src.mkdir()
    shutil.copy(shared / "video" / CLIP, src / CLIP)
    t0 = time.perf_counter()
    # recheck off: one pass is what is measured here (a second, denser pass would only double the time)
    summary = run_anonymize(
        AnonymizeConfig.of(src=str(src), dest=str(dest), method="replace", workers=1, recheck=False)
    )
    seconds = time.perf_counter() - t0
    stability = summary["report"]["privacy"]["identity_stability"]
    assert stability is not None and math.isfinite(stability), summary["report"]["privacy"]
    assert stability >= 0.9
    loc = Location(str(private(dest)))
    per_media = manifests.read_table(loc, "checks/media").to_pandas()
    assert len(per_media) == 1 and per_media.identity_stability.iloc[0] == pytest.approx(stability)
    faces = manifests.read_table(loc, "checks/faces").to_pandas()
    track = faces.groupby("track_id").frame_index.nunique().max()
    assert track >= 4  # consecutive checked faces of one track: at least 5 frames checked, most show the face
    report = json.loads((private(dest) / summary["report"]["html"]).with_suffix(".json").read_text())
    assert report["privacy"]["identity_stability"] == pytest.approx(stability)
    page = (private(dest) / summary["report"]["html"]).read_text()
    assert "identity stability" in page
    assert "non-commercial research" in page  # the generator's licence, in the report's models
    assert any(m["role"] == "generator" and "non-commercial" in m["licence"] for m in report["models"])
    media = manifests.read_table(loc, "media").to_pandas().iloc[0]
    # the gate judges a replaced face by identity: this one shows someone else, so it is published
    assert media.status == "ok", media.reason
    assert summary["report"]["privacy"]["leak"]["faces_found"] == 0 and (dest / CLIP).is_file()
    assert summary["report"]["privacy"]["reid"]["mean_cosine"] < 0.92
    figures.append(
        f"replace on {CLIP}: identity stability {stability:.3f} over {len(faces)} checked faces "
        f"({track} frames of the longest track), mean identity cosine to the original "
        f"{summary['report']['privacy']['reid']['mean_cosine']:.3f}, leak gate: {media.status} "
        f"({summary['report']['privacy']['leak']['faces_found']} face(s) it counts as unmasked), "
        f"{seconds:.0f} s"
    )
