import numpy as np

from faceveil.models.anonymizers import Anonymizer, create_anonymizer
from faceveil.models.detections import Detections
from faceveil.pipeline.protect import protect_frame


class Broken(Anonymizer):
    def _replace(self, roi, face_size, key):
        raise RuntimeError("model crashed")


def test_a_failing_anonymizer_blacks_out_the_whole_frame():
    rgb = np.full((40, 50, 3), 200, np.uint8)
    assert protect_frame(Broken(), rgb, Detections([[5, 5, 20, 20]], [0.9])) is True
    assert not rgb.any()


def test_a_working_anonymizer_changes_only_the_face():
    rgb = np.random.default_rng(0).integers(0, 256, (40, 50, 3), dtype=np.uint8)
    before = rgb.copy()
    assert protect_frame(create_anonymizer("solid"), rgb, Detections([[5, 5, 20, 20]], [0.9])) is False
    assert (rgb[8:18, 8:18] != before[8:18, 8:18]).any() and (rgb[:, 40:] == before[:, 40:]).all()
