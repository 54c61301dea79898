"""MediaPipe Face Mesh on real photos: the dense points agree with CenterFace's 5 landmarks, the face
oval holds the nose, and a non-face crop scores low."""

import cv2
import numpy as np
import pytest
from skimage import data

from faceveil.models import face_mesh as fm
from faceveil.models.detectors import create_detector
from faceveil.storage.media import read_image

# different people, sizes 150 px to 1600 px; photos on which CenterFace's own landmarks are good
# (on some others, e.g. angelina/1.jpg, CenterFace's eye and mouth points are off while the mesh is right)
PHOTOS = [
    "deepface_id38/1.jpg",
    "elon/1.jpg",
    "jack/1.jpg",
    "jeff/1.jpg",
    "leonard/1.jpg",
    "marissa/1.jpg",
    "scarlett/1.jpg",
]


@pytest.fixture(scope="module")
def mesh():
    try:
        m = fm.FaceMesh()
        m.points(np.zeros((8, 8, 3), np.uint8), (0, 0, 8, 8), None)
    except fm.FaceMeshUnavailable as e:
        pytest.skip(str(e))
    return m


@pytest.fixture(scope="module")
def faces(shared, mesh):
    """(name, CenterFace landmarks, mesh points, presence score) for each photo's main face."""
    det = create_detector("centerface")
    out = []
    for name in PHOTOS:
        rgb = read_image(str(shared / "faces" / name))[0]
        d = det.detect(rgb)
        assert len(d.boxes), f"CenterFace found no face in {name}"
        i = int(np.argmax(d.scores))
        out.append((name, d.landmarks[i], *mesh.points(rgb, d.boxes[i], d.landmarks[i])))
    return out


@pytest.mark.shared_data
def test_mesh_agrees_with_centerface(faces):
    for name, lm, pts, score in faces:
        assert pts.shape == (468, 2) and pts.dtype == np.float32
        assert score > 0.5, f"{name}: presence {score:.3f}"
        ed = float(np.linalg.norm(lm[1] - lm[0]))
        # the person's right eye is on the image left (CenterFace's first landmark)
        for contour, ref, side in ((fm.RIGHT_EYE, lm[0], "image-left"), (fm.LEFT_EYE, lm[1], "image-right")):
            err = np.linalg.norm(pts[contour].mean(0) - ref) / ed
            assert err < 0.25, f"{name}: {side} eye off by {err:.2f} eye distances"
        err = np.linalg.norm(pts[fm.LIPS_OUTER].mean(0) - (lm[3] + lm[4]) / 2) / ed
        assert err < 0.3, f"{name}: lips off by {err:.2f} eye distances"
        oval = pts[fm.FACE_OVAL].reshape(-1, 1, 2)
        assert cv2.pointPolygonTest(oval, (float(lm[2][0]), float(lm[2][1])), False) > 0, (
            f"{name}: nose outside the oval"
        )
        assert pts[fm.FOREHEAD_TOP][1] < lm[:2, 1].min() and pts[fm.CHIN][1] > lm[3:, 1].max(), name


def test_non_face_scores_low(mesh):
    grey = np.full((300, 300, 3), 128, np.uint8)
    for rgb, box in ((grey, (50, 50, 250, 250)), (data.coffee(), (150, 100, 350, 300))):
        pts, score = mesh.points(rgb, box, np.full((5, 2), np.nan))
        assert pts.shape == (468, 2)
        assert score < 0.5, f"presence {score:.3f} on a non-face"


def test_missing_model_raises(tmp_path):
    path = tmp_path / "nowhere" / "face_landmark.tflite"
    with pytest.raises(fm.FaceMeshUnavailable, match="nowhere/face_landmark.tflite"):
        fm.FaceMesh(str(path)).points(np.zeros((10, 10, 3), np.uint8), (0, 0, 10, 10), None)
