import numpy as np

from faceveil.models.anonymizers import Anonymizer, create_anonymizer
from faceveil.models.detections import Detections
from faceveil.tasks.common import apply_fail_closed


class Broken(Anonymizer):
    def _replace(self, roi, face_size):
        raise RuntimeError("model crashed")


def test_a_failing_anonymizer_blacks_out_the_whole_frame():
    rgb = np.full((40, 50, 3), 200, np.uint8)
    assert apply_fail_closed(Broken(), rgb, Detections([[5, 5, 20, 20]], [0.9])) is True
    assert not rgb.any()


def test_a_working_anonymizer_changes_only_the_face():
    rgb = np.random.default_rng(0).integers(0, 256, (40, 50, 3), dtype=np.uint8)
    before = rgb.copy()
    assert apply_fail_closed(create_anonymizer("solid"), rgb, Detections([[5, 5, 20, 20]], [0.9])) is False
    assert (rgb[8:18, 8:18] != before[8:18, 8:18]).any() and (rgb[:, 40:] == before[:, 40:]).all()
