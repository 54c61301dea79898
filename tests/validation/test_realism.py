"""Realism figures: the Fréchet distance between embedding sets and the per-face sharpness ratio."""

import cv2
import numpy as np
import pytest
from skimage import data

from faceveil.models.anonymizers import create_anonymizer
from faceveil.models.detectors import create_detector
from faceveil.validation.realism import (
    DetectorFeatures,
    disjoint_reference,
    frechet_distance,
    sharpness_ratio,
    sharpness_summary,
)


@pytest.fixture(scope="module")
def astronaut():
    rgb = np.ascontiguousarray(data.astronaut())
    return rgb, create_detector("centerface").detect(rgb)


def test_frechet_distance_zero_symmetric_and_grows_with_a_shift():
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((40, 128)), rng.standard_normal((40, 128))  # fewer rows than dimensions
    assert frechet_distance(a, a) == pytest.approx(0, abs=1e-4)
    shift = np.full(128, 0.1)
    assert frechet_distance(a, a + shift) == pytest.approx(
        shift @ shift, abs=1e-4
    )  # one covariance: the mean term only
    assert frechet_distance(a, b) == pytest.approx(frechet_distance(b, a), rel=1e-6)
    assert frechet_distance(a, b + 0.5) > frechet_distance(a, b) > 0
    axes = rng.standard_normal((6, 128))  # face embeddings spread in a few directions, as dlib's do
    real, other = rng.standard_normal((40, 6)) @ axes, rng.standard_normal((40, 6)) @ axes
    collapsed = 0.05 * rng.standard_normal((40, 6)) @ axes  # every face alike (a blur, a fill) at the same mean
    assert frechet_distance(real, other) < 0.5 * frechet_distance(real, collapsed)
    with pytest.raises(ValueError):
        frechet_distance(a[:1], b)


def test_disjoint_reference_leaves_out_the_test_rows_people():
    groups = np.array(["amy", "amy", "bob", "cy", "cy"])
    assert disjoint_reference(groups, [True, False, False, True, False]).tolist() == [False, False, True, False, False]


def _degraded(rgb, box, how):
    out = rgb.copy()
    x1, y1, x2, y2 = np.round(box).astype(int)
    roi = out[y1:y2, x1:x2]
    if how == "blur":
        roi[:] = cv2.GaussianBlur(roi, (0, 0), 2.0)
    else:  # a face from a small generator made big: 5x down, then up
        small = cv2.resize(roi, (roi.shape[1] // 5, roi.shape[0] // 5), interpolation=cv2.INTER_AREA)
        roi[:] = cv2.resize(small, (roi.shape[1], roi.shape[0]), interpolation=cv2.INTER_CUBIC)
    return out


def test_sharpness_ratio_tells_a_real_face_from_a_soft_one(astronaut):
    rgb, dets = astronaut
    lm, box = dets.landmarks[0], dets.boxes[0]
    real = sharpness_ratio(rgb, lm)
    assert 0.5 < real < 2.0  # as sharp as its photo
    for how in ("blur", "upscaled"):
        assert sharpness_ratio(_degraded(rgb, box, how), lm) < 0.1 * real, how
    assert np.isnan(sharpness_ratio(rgb, np.full((5, 2), np.nan)))
    for name in ("blur", "solid"):  # methods that rewrite a whole box: the ring is taken outside it
        anon = create_anonymizer(name)
        region = anon.regions(dets, rgb.shape[1], rgb.shape[0])[0]
        assert sharpness_ratio(anon.apply(rgb.copy(), dets), lm, changed=region) < 0.1 * real, name
    s = sharpness_summary([real, 0.02, np.nan])
    assert s["faces"] == 2 and s["soft_share"] == 0.5 and s["median"] == pytest.approx((real + 0.02) / 2)


def test_detector_features_one_vector_per_face(astronaut):
    rgb, dets = astronaut
    f = DetectorFeatures(threads=1)
    v = f.features(rgb, dets.boxes)
    assert v.shape == (1, 320) and np.isfinite(v).all()
    blurred = f.features(_degraded(rgb, dets.boxes[0], "blur"), dets.boxes)
    assert np.linalg.norm(v - blurred) > 0.1 * np.linalg.norm(v)
    assert f.features(rgb, np.zeros((0, 4))).shape == (0, 320)
