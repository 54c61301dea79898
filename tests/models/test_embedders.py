import csv
import pickle
import time

import cv2
import numpy as np
import pytest
from skimage import data

from faceveil.models.detections import Detections
from faceveil.models.detectors import create_detector
from faceveil.models.embedders import EMBEDDERS, create_embedder, frontality, quality


@pytest.fixture(scope="module")
def embedder():
    return create_embedder("dlib-resnet")


@pytest.fixture(scope="module")
def astronaut():
    rgb = np.ascontiguousarray(data.astronaut())
    d = create_detector("centerface").detect(rgb)
    return rgb, d[[int(np.argmax(d.scores))]]


def test_registry():
    assert "dlib-resnet" in EMBEDDERS.names()
    with pytest.raises(ValueError, match="unknown embedder"):
        create_embedder("arcface-from-the-internet")


def test_weights_and_errors(embedder, tmp_path):
    assert embedder.weights_id.startswith("sha256:") and len(embedder.weights_id) == 7 + 64
    with pytest.raises(FileNotFoundError):
        create_embedder("dlib-resnet", weights_dir=str(tmp_path))
    with pytest.raises(ValueError):
        embedder.embed(np.zeros((10, 10), np.uint8), Detections.empty())


def test_empty_and_pickled(embedder, astronaut):
    rgb, d = astronaut
    assert embedder.embed(rgb, Detections.empty()).shape == (0, 128)
    v = embedder.embed(rgb, d)
    assert v.dtype == np.float32 and v.shape == (1, 128)
    again = pickle.loads(pickle.dumps(embedder)).embed(rgb, d)  # as shipped to a Dask worker
    np.testing.assert_allclose(again, v, atol=1e-6)


def test_quality_prefers_sharp_frontal(astronaut):
    rgb, d = astronaut
    sharp, blurred = quality(rgb, d)[0], quality(cv2.GaussianBlur(rgb, (0, 0), 4), d)[0]
    assert 0 <= blurred < sharp <= 1 and sharp > 2 * blurred
    small = Detections(d.boxes * 0.3, d.scores, d.landmarks * 0.3)  # same face, a third the size
    assert quality(cv2.resize(rgb, None, fx=0.3, fy=0.3, interpolation=cv2.INTER_AREA), small)[0] < sharp
    turned = d.landmarks.copy()
    turned[0, 2, 0] = turned[0, 1, 0]  # nose under one eye: a head turned aside
    assert frontality(turned)[0] < 0.5 * frontality(d.landmarks)[0]
    assert frontality(np.full((1, 5, 2), np.nan))[0] == 0.5
    assert quality(rgb, Detections.empty()).shape == (0,)


@pytest.fixture(scope="module")
def face_embeddings(shared, embedder):
    """Unit embeddings of the best-scoring CenterFace face in every photo of faces/, with identities."""
    det = create_detector("centerface")
    rows = list(csv.DictReader(open(shared / "identities.csv")))
    vecs, ids, seconds = [], [], 0.0
    for row in rows:
        rgb = np.ascontiguousarray(cv2.imread(str(shared / row["path"]))[:, :, ::-1])
        s = min(1.0, 1024 / max(rgb.shape[:2]))  # some photos are 2400 px: detect faster, same faces
        if s < 1:
            rgb = cv2.resize(rgb, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)
        d = det.detect(rgb)
        assert len(d), f"no face found in {row['path']}"
        t = time.perf_counter()
        vecs.append(embedder.embed(rgb, d[[int(np.argmax(d.scores))]])[0])
        seconds += time.perf_counter() - t
        ids.append(row["identity"])
    return np.array(vecs), np.array(ids), seconds / len(rows)


@pytest.mark.slow  # detects and embeds all 101 photos of faces/ (about 30 s)
@pytest.mark.shared_data
def test_identity_separation(face_embeddings, embedder, figures):
    e, ids, per_face = face_embeddings
    assert e.shape == (len(ids), 128) and len(set(ids)) >= 10
    np.testing.assert_allclose(np.linalg.norm(e, axis=1), 1, atol=1e-5)
    sim = e @ e.T
    same, other = ids[:, None] == ids[None], ~np.eye(len(ids), dtype=bool)
    same_mean, diff_mean = sim[same & other].mean(), sim[~same].mean()
    np.fill_diagonal(sim, -np.inf)
    top1 = float((ids[sim.argmax(1)] == ids).mean())  # leave-one-out nearest neighbour
    th = embedder.same_person_threshold
    tar, far = (sim[same & other] >= th).mean(), (sim[~same] >= th).mean()
    figures.append(
        f"dlib-resnet on faces/ ({len(ids)} photos, {len(set(ids))} ids): cosine same {same_mean:.3f} "
        f"vs different {diff_mean:.3f}; leave-one-out top-1 {top1:.3f}; at threshold {th}: "
        f"same-pair accept {tar:.3f}, different-pair accept {far:.4f}; {per_face * 1e3:.0f} ms/face"
    )
    print(figures[-1])
    assert same_mean > diff_mean + 0.08  # measured 0.962 vs 0.834
    assert top1 >= 0.95  # measured 1.000
    assert tar >= 0.9 and far <= 0.01  # measured 0.977 and 0.0017


def test_mirrored_detections_and_mirror_mean_view(embedder, astronaut):
    from faceveil.models.track_templates import identity_vectors

    rgb, d = astronaut
    w = rgb.shape[1]
    m = d.mirrored(w)
    assert np.allclose(m.mirrored(w).boxes, d.boxes) and np.allclose(m.mirrored(w).landmarks, d.landmarks)
    assert m.boxes[0, 0] == pytest.approx(w - d.boxes[0, 2]) and m.boxes[0, 2] > m.boxes[0, 0]
    # the subject's right eye stays landmark 0: after mirroring it is again the one further left
    assert m.landmarks[0, 0, 0] < m.landmarks[0, 1, 0] and d.landmarks[0, 0, 0] < d.landmarks[0, 1, 0]
    assert np.allclose(frontality(m.landmarks), frontality(d.landmarks), atol=1e-5)
    plain = identity_vectors(embedder, rgb, d, "plain")[0]
    mirror = embedder.embed(np.ascontiguousarray(rgb[:, ::-1]), m)[0]
    both = identity_vectors(embedder, rgb, d, "mirror-mean")[0]
    assert np.allclose(both, (plain + mirror) / np.linalg.norm(plain + mirror), atol=1e-5)
    assert plain @ mirror > 0.9 and plain @ mirror < 0.9999  # the same person, seen another way
    # the mirror image of the mirrored frame gives the same mirror-mean view
    flipped = identity_vectors(embedder, np.ascontiguousarray(rgb[:, ::-1]), m, "mirror-mean")[0]
    assert flipped @ both > 0.999
    with pytest.raises(ValueError, match="unknown template view"):
        identity_vectors(embedder, rgb, d, "sideways")
