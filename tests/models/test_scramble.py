import numpy as np
import pytest
from skimage import data

from faceveil.models.detectors import DetectorSettings, create_detector
from faceveil.models.scramble import scramble, unscramble


@pytest.mark.parametrize("shape,block", [((64, 48, 3), 8), ((67, 53, 3), 8), ((5, 7, 3), 8), ((120, 96, 3), 12)])
def test_inverts_exactly(shape, block):
    rng = np.random.default_rng(0)
    region = rng.integers(0, 256, shape, dtype=np.uint8)
    key = bytes(range(32))
    s = scramble(region, key, block)
    assert s.shape == region.shape and s.dtype == np.uint8
    assert not np.array_equal(s, region)
    assert np.array_equal(unscramble(s, key, block), region)
    wrong = unscramble(s, bytes(range(1, 33)), block)
    assert np.mean(wrong == region) < 0.05


def test_scrambled_face_is_not_a_face():
    img = np.ascontiguousarray(data.astronaut())
    det = create_detector("centerface", DetectorSettings(threshold=0.3))
    assert len(det.detect(img)) >= 1
    out = img.copy()
    out[30:200, 150:300] = scramble(img[30:200, 150:300], b"k" * 32)
    found = det.detect(out)
    inside = [b for b in found.boxes if b[0] < 300 and b[2] > 150 and b[1] < 200 and b[3] > 30]
    assert not inside
    # pixel statistics carry nothing of the face: near-uniform histogram, no correlation with the original
    region = out[30:200, 150:300].astype(float)
    assert abs(np.corrcoef(region.ravel(), img[30:200, 150:300].astype(float).ravel())[0, 1]) < 0.05
