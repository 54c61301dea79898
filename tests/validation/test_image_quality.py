import math

import numpy as np
import pytest
from skimage import data

from faceveil.models.anonymizers import create_anonymizer
from faceveil.models.detectors import create_detector
from faceveil.validation.image_quality import frame_quality, masked_psnr, masked_ssim, region_mask


@pytest.fixture(scope="module")
def astronaut():
    rgb = np.ascontiguousarray(data.astronaut())
    return rgb, create_detector("centerface").detect(rgb)


def test_anonymizing_leaves_the_background_and_destroys_the_face(astronaut):
    rgb, dets = astronaut
    anon = create_anonymizer("mosaic")
    out = anon.apply(rgb.copy(), dets)
    q = frame_quality(rgb, out, anon.regions(dets, rgb.shape[1], rgb.shape[0]))
    assert q["background_psnr"] == math.inf
    assert q["background_ssim"] > 0.97  # only the SSIM window's reach across the mask edge differs
    assert q["face_ssim"] < 0.5


def test_psnr_matches_its_definition_and_ssim_orders_damage(astronaut):
    rgb, _ = astronaut
    rng = np.random.default_rng(0)
    noisy = np.clip(rgb.astype(int) + rng.normal(0, 5, rgb.shape).round(), 0, 255).astype(np.uint8)
    mask = region_mask(rgb.shape, [[0, 0, 256, 512]])
    mse = ((rgb.astype(float) - noisy.astype(float))[mask] ** 2).mean()
    assert masked_psnr(rgb, noisy, mask) == pytest.approx(10 * math.log10(255**2 / mse), abs=1e-4)
    worse = np.clip(rgb.astype(int) + rng.normal(0, 25, rgb.shape).round(), 0, 255).astype(np.uint8)
    assert 1 > masked_ssim(rgb, noisy, mask) > masked_ssim(rgb, worse, mask)
    assert masked_ssim(rgb, rgb, mask) == pytest.approx(1.0)
    assert math.isnan(masked_psnr(rgb, noisy, np.zeros(rgb.shape[:2], bool)))
    with pytest.raises(ValueError, match="shape"):
        frame_quality(rgb, rgb[:10], [])


def test_psnr_from_mse_and_whole_image_psnr():
    import math

    from faceveil.validation.image_quality import masked_psnr, psnr_from_mse

    assert psnr_from_mse(0) == math.inf and psnr_from_mse(255.0**2) == 0.0
    assert abs(psnr_from_mse(1.0) - 48.1308) < 1e-3
    a = np.zeros((8, 8, 3), np.uint8)
    b = a.copy()
    b[0, 0, 0] = 16  # one channel of one pixel off by 16: mse 256 / 192
    assert abs(masked_psnr(a, b) - psnr_from_mse(256 / 192)) < 1e-9
    mask = np.zeros((8, 8), bool)
    mask[4:, 4:] = True
    assert masked_psnr(a, b, mask) == math.inf and math.isnan(masked_psnr(a, b, np.zeros((8, 8), bool)))


def test_ssim_of_a_sliver_at_the_frame_edge_is_nan_not_an_error():
    """A face box one or two pixels wide at the frame's edge (a tracked face leaving the picture):
    its crop is under SSIM's 11 px window, so its SSIM is unknown (NaN), and the checks go on."""
    import math

    from faceveil.validation.image_quality import region_ssim, ssim_map

    a = np.random.default_rng(0).integers(0, 256, (40, 60, 3), dtype=np.uint8)
    assert math.isnan(region_ssim(a, a, (0, 10, 1, 30)))  # crop 6 px wide
    assert math.isnan(region_ssim(a, a, (0, 10, 5, 30)))  # crop 10 px wide
    assert np.isnan(ssim_map(a[:10], a[:10])).all() and not np.isnan(ssim_map(a[:11], a[:11])).any()
    assert region_ssim(a, a, (10, 10, 30, 30)) > 0.99
