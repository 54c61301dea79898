"""--scope: the head scope covers the hair above the face and not the background beside the head; the
person scope covers the body; without the segmentation model the whole extent is masked (fail
closed); scopes apply to the masking methods only."""

import numpy as np
import pytest
import skimage.data

from faceveil.models.anonymizers import MaskSettings, create_anonymizer, mask_regions
from faceveil.models.detections import Detections
from faceveil.models.litert import ModelUnavailable
from faceveil.models.scope import scope_mask

ASTRONAUT_FACE = np.array([[181.5, 58.2, 269.9, 177.8]], np.float32)  # CenterFace's box on skimage's astronaut


def _dets():
    return Detections(ASTRONAUT_FACE, np.array([0.9], np.float32))


def _changed(scope: str) -> tuple[np.ndarray, np.ndarray]:
    """(the pixels a pure green fill changed, the region) on skimage's astronaut."""
    from faceveil.models.anonymizers import Solid

    img = skimage.data.astronaut()
    a = Solid(MaskSettings(scope=scope), colour=(0, 255, 0))
    out = a.apply(img.copy(), _dets())
    return np.all(out == (0, 255, 0), axis=2), a.regions(_dets(), img.shape[1], img.shape[0])[0]


def test_head_scope_covers_hair_not_background():
    face, _ = _changed("face")
    head, region = _changed("head")
    assert head[face].all()  # the face scope's pixels are always in
    assert not face[:17].any() and head[8:17, 190:260].mean() > 0.9  # the hair above the face region
    assert not face[60:120, :140].any() and head[60:120, 124:140].mean() > 0.8  # and beside it
    assert not head[:, :100].any() and not head[:, 360:].any()  # the flag, the shuttle
    assert head.sum() > 1.1 * face.sum()
    assert not head[region[3] :].any()  # nothing outside the region the vault seals


def test_person_scope_covers_the_body():
    head, _ = _changed("head")
    person, _ = _changed("person")
    assert person[300:400, 100:300].mean() > 0.8  # the orange suit
    assert head[300:400, 100:300].mean() == 0
    assert not person[:100, :60].any()  # the flag's top-left corner


class _Missing:
    def probability(self, rgb, window):
        raise ModelUnavailable("person segmentation model missing at /nowhere")


def test_without_the_model_the_whole_extent_is_masked():
    img = skimage.data.astronaut()
    dets = _dets()
    a = create_anonymizer("solid", MaskSettings(scope="head"))
    region = a.regions(dets, 512, 512)[0]
    face = mask_regions(dets, 512, 512, a.mask)[0]
    m = scope_mask(img, dets.boxes[0], float(dets.sizes[0]), face, region, "head", segmenter=_Missing())
    assert m.all() and m.shape == (region[3] - region[1], region[2] - region[0])


@pytest.mark.parametrize("method", ["replace", "scramble", "keep"])
def test_scope_needs_a_masking_method(method):
    with pytest.raises(ValueError, match="scope head works with the masking methods"):
        create_anonymizer(method, MaskSettings(scope="head"))


def test_unknown_scope_is_refused():
    with pytest.raises(ValueError, match="scope must be one of face, head, person"):
        MaskSettings(scope="hair")


def test_scoped_solid_fills_with_a_neutral_grey():
    """Neither the person's colours nor their surroundings' (which tell photos of one session apart)."""
    from faceveil.models.anonymizers.masks import SCOPED_FILL

    img = skimage.data.astronaut()
    out = create_anonymizer("solid", MaskSettings(scope="head")).apply(img.copy(), _dets())
    head, _ = _changed("head")
    assert (out[head] == SCOPED_FILL).all() and (out[~head] == img[~head]).all()


def test_scoped_mosaic_shows_blocks_that_carry_nothing_of_the_person():
    """Under the head scope a mosaic's blocks are grey and the same whoever is under them: the head's
    colours and lightness re-identified people across photos (colour 11.9 %, lightness 8.9 % against a
    4.8 % chance); the output still reads as a mosaic (blocks of several greys); its pattern is the
    media's, so photos of one session (same size and framing) do not share it."""
    img = skimage.data.astronaut()
    other = np.ascontiguousarray(255 - img[:, ::-1])  # another "person": every pixel different
    head, region = _changed("head")
    a = create_anonymizer("mosaic", MaskSettings(scope="head"))
    out = a.apply(img.copy(), _dets())
    out_other = a.apply(other.copy(), _dets())
    inside = head & np.all(out_other != other, axis=2)  # masked in both (the silhouettes differ a little)
    assert inside.sum() > 0.5 * head.sum()
    assert (out[inside] == out_other[inside]).all()
    assert (out[inside][:, 0] == out[inside][:, 1]).all() and (out[inside][:, 1] == out[inside][:, 2]).all()
    assert len(np.unique(out[inside][:, 0])) >= 3
    assert (out[~head] == img[~head]).all()
    again = a.apply(img.copy(), _dets(), media="m1")  # the pattern follows the media, and only the media:
    assert (again == a.apply(img.copy(), _dets(), media="m1")).all()  # the same on a rerun,
    assert (again[head] != a.apply(img.copy(), _dets(), media="m2")[head]).mean() > 0.5  # unrelated between media


def test_scope_changes_the_work_hash_only_when_set(tmp_path):
    from faceveil.config import AnonymizeConfig

    base = AnonymizeConfig.of(src=str(tmp_path), dest=str(tmp_path / "o"))
    assert "scope" not in base.output_settings()
    head = AnonymizeConfig.of(src=str(tmp_path), dest=str(tmp_path / "o"), scope="head")
    assert head.output_settings()["scope"] == "head" and head.settings.mask.scope == "head"


def test_the_vault_seals_everything_a_scope_changes():
    """protect_frame seals each region before the method runs: pasting the sealed crops back gives the
    original frame exactly (what `restore` does), for the head and person scopes alike."""
    from faceveil.pipeline.protect import protect_frame

    class _Vault:
        def __init__(self):
            self.sealed = []

        def seal(self, frame, track, box, pixels):
            self.sealed.append((box, pixels.copy()))

    img = skimage.data.astronaut()
    for scope in ("head", "person"):
        vault, out = _Vault(), img.copy()
        assert not protect_frame(create_anonymizer("mosaic", MaskSettings(scope=scope)), out, _dets(), 0, "m", vault)
        assert (out != img).any()
        for (x1, y1, x2, y2), pixels in vault.sealed:
            out[y1:y2, x1:x2] = pixels
        assert (out == img).all()
