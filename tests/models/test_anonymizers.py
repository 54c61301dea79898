import numpy as np
import pytest

from faceveil.models.anonymizers import ANONYMIZERS, MaskSettings, create_anonymizer, mask_regions
from faceveil.models.detections import Detections


@pytest.fixture
def frame():
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (120, 160, 3), dtype=np.uint8)


def test_registry_lists_methods_and_names_choices_on_typo():
    assert {"solid", "blur", "mosaic"} <= set(ANONYMIZERS.names())
    with pytest.raises(ValueError, match="choose one of"):
        create_anonymizer("pixelate")


@pytest.mark.parametrize("name", ["solid", "blur", "mosaic"])
@pytest.mark.parametrize("shape", ["box", "ellipse"])
def test_face_box_fully_changed_and_outside_untouched(frame, name, shape):
    dets = Detections([[40, 30, 80, 80]], [0.9])
    out = create_anonymizer(name, MaskSettings(shape=shape)).apply(frame.copy(), dets)
    x1, y1, x2, y2 = mask_regions(dets, 160, 120, MaskSettings(shape=shape))[0]
    outside = np.ones(frame.shape[:2], bool)
    outside[y1:y2, x1:x2] = False
    assert (out[outside] == frame[outside]).all()
    face = out[30:80, 40:80].astype(int)
    orig = frame[30:80, 40:80].astype(int)
    # the whole face box is covered, corners included, even with an ellipse mask
    assert (np.abs(face - orig).sum(2) > 0).mean() > 0.97


def test_mosaic_block_size_scales_with_face_and_has_a_floor(frame):
    big = create_anonymizer("mosaic", MaskSettings(shape="box", pad=0)).apply(
        frame.copy(), Detections([[0, 0, 96, 96]], [1])
    )
    small = create_anonymizer("mosaic", MaskSettings(shape="box", pad=0)).apply(
        frame.copy(), Detections([[0, 0, 20, 20]], [1])
    )
    n_big = len(np.unique(big[:96, :96].reshape(-1, 3), axis=0))
    n_small = len(np.unique(small[:20, :20].reshape(-1, 3), axis=0))
    assert 4 <= n_big <= 16  # 3 blocks across a large face (its padded region takes a few more)
    assert n_small <= 4  # a 20 px face gets blocks of at least 10 px: 2x2 at most


def test_solid_uses_region_mean_colour(frame):
    out = create_anonymizer("solid", MaskSettings(shape="box", pad=0)).apply(
        frame.copy(), Detections([[10, 10, 50, 50]], [1])
    )
    patch = out[10:50, 10:50].reshape(-1, 3)
    assert (patch == patch[0]).all()
    assert np.abs(patch[0].astype(int) - frame[10:50, 10:50].reshape(-1, 3).mean(0)).max() <= 1


def test_motion_grows_the_region():
    still = Detections([[50, 50, 70, 70]], [1])
    moving = Detections([[50, 50, 70, 70]], [1], motion=[[6, 0]])
    r0 = mask_regions(still, 200, 200, MaskSettings())[0]
    r1 = mask_regions(moving, 200, 200, MaskSettings())[0]
    assert (r1[2] - r1[0]) > (r0[2] - r0[0]) and (r1[3] - r1[1]) == (r0[3] - r0[1])


def test_regions_clipped_to_frame():
    r = mask_regions(Detections([[-10, -10, 30, 30]], [1]), 25, 25, MaskSettings())
    assert r.min() >= 0 and r[:, [0, 2]].max() <= 25 and r[:, [1, 3]].max() <= 25
