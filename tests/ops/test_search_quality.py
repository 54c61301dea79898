"""Face quality in search: measured on a real face (the astronaut photo), stored with the templates
in a real sealed LanceDB index, and weighed in the order of matches so a small blurred bystander
with a higher cosine does not come before a clear face of the person."""

from __future__ import annotations

from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from faceveil.models.track_templates import QUALITY_FIELDS, face_quality, ranking_quality
from faceveil.ops.search import RANK_BY_COSINE, QualityRanking, search_tracks
from faceveil.pipeline.sealed_index import index_keys
from faceveil.storage.control import control_key
from faceveil.storage.keys import MasterKey
from faceveil.storage.paths import Location
from faceveil.tasks.index_media import index_templates

DIM = 128


@pytest.fixture(scope="module")
def astronaut():
    """(the photo, its largest face as CenterFace finds it)."""
    from skimage import data

    from faceveil.models.detectors import DetectorSettings
    from faceveil.pipeline.toolkit import loaded_detector

    rgb = np.ascontiguousarray(data.astronaut())
    dets = loaded_detector("centerface", DetectorSettings(threshold=0.5)).detect(rgb)
    assert len(dets)
    return rgb, dets[[int(np.argmax(dets.sizes))]]


def _rank_quality(q: dict) -> float:
    return float(ranking_quality(*(q[f] for f in QUALITY_FIELDS))[0])


def test_sharp_large_frontal_face_outranks_itself_downscaled_and_blurred(astronaut):
    rgb, face = astronaut
    big = face_quality(rgb, face)
    assert set(big) == set(QUALITY_FIELDS) and big["face_px"][0] > 80 and big["frontality"][0] > 0.5
    # the same face as a background bystander: 20 px across, blurred
    f = 20 / float(face.sizes[0])
    small = cv2.GaussianBlur(cv2.resize(rgb, None, fx=f, fy=f, interpolation=cv2.INTER_AREA), (0, 0), 1.0)
    tiny = face_quality(small, face.scale(f, f))
    assert tiny["face_px"][0] < 25
    assert tiny["sharpness"][0] < 0.5 * big["sharpness"][0]
    assert _rank_quality(tiny) < 0.2 * _rank_quality(big)
    # sharpness alone, at the same size: blur costs it, so it is not the size term in disguise
    blurred = face_quality(cv2.GaussianBlur(rgb, (0, 0), 4.0), face)
    assert blurred["sharpness"][0] < 0.7 * big["sharpness"][0]
    assert blurred["face_px"][0] == big["face_px"][0]
    # a box off the picture measures nothing, and never raises
    assert face_quality(rgb, face.translate(5000, 5000))["sharpness"][0] == 0


def test_quality_ranking_rule():
    r = QualityRanking(weight=0.1, reference=0.5)
    assert r.rank(0.9, 0.8) == pytest.approx(0.9)  # at or above the reference: the cosine as it is
    assert r.rank(0.9, 0.0) == pytest.approx(0.85)  # quality 0: loses weight x reference
    assert r.rank(0.9, np.nan) == pytest.approx(0.9)  # unknown quality (an old index): no penalty
    assert RANK_BY_COSINE.rank(0.9, 0.0) == pytest.approx(0.9)
    assert np.isnan(ranking_quality([np.nan], [0.5], [0.5])[0])


def _photo(media_id: str, vector, quality: dict) -> SimpleNamespace:
    return SimpleNamespace(
        row={"media_id": media_id, "rel_path": f"cam/{media_id}.jpg"},
        templates=[
            {
                "track_id": 0,
                "kind": kind,
                "vector": vector,
                "first_frame": 0,
                "last_frame": 0,
                "t_start_s": 0.0,
                "t_end_s": 0.0,
                "boxes_json": "[]",
                "vault_key_ids": [f"k-{media_id}"],
                "quality": 0.5,
                **quality,
            }
            for kind in ("template", "exemplar")
        ],
    )


def _unit(x):
    return (np.asarray(x, np.float64) / np.linalg.norm(x)).astype(np.float32)


def test_clear_own_face_ranks_above_a_higher_cosine_blurred_bystander(tmp_path):
    rng = np.random.default_rng(0)
    probe = _unit(rng.standard_normal(DIM))
    noise = [_unit(g - (g @ probe) * probe) for g in rng.standard_normal((2, DIM))]  # orthogonal to the probe
    own = _unit(0.93 * probe + np.sqrt(1 - 0.93**2) * noise[0])  # the person, in a clear photo: cosine 0.93
    other = _unit(0.95 * probe + np.sqrt(1 - 0.95**2) * noise[1])  # somebody else, tiny and blurred: 0.95
    loc, key = Location(str(tmp_path)), MasterKey.generate()
    index_templates(
        loc,
        [
            _photo("own", own, {"face_px": 180.0, "sharpness": 0.85, "frontality": 0.9}),
            _photo("crowd", other, {"face_px": 16.0, "sharpness": 0.1, "frontality": 0.7}),
        ],
        index_keys(key, DIM),
        "dlib-resnet",
        key.fingerprint,
        "mirror-mean",
        control_key(key),
    )
    by_cosine, _ = search_tracks(loc, key, probe, threshold=0.9, ranking=RANK_BY_COSINE)
    assert [m.media_id for m in by_cosine] == ["crowd", "own"]  # what search did before
    ranked, _ = search_tracks(loc, key, probe, threshold=0.9)  # quality ranking: on by default
    assert [m.media_id for m in ranked] == ["own", "crowd"]
    own_m, crowd_m = ranked
    assert own_m.score == pytest.approx(0.93, abs=1e-4) and crowd_m.score == pytest.approx(0.95, abs=1e-4)
    assert own_m.rank == pytest.approx(own_m.score) and crowd_m.rank < own_m.rank  # only the bystander pays
    assert own_m.quality > 0.5 and crowd_m.quality < 0.05
    # the decision stays the cosine's: both still match at 0.9, neither at 0.96
    assert search_tracks(loc, key, probe, threshold=0.96)[0] == []
