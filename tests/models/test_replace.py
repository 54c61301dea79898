import os
import time

import cv2
import numpy as np
import pytest
from skimage import data

from faceveil.models.anonymizers import ANONYMIZERS, Replace, create_anonymizer
from faceveil.models.detections import Detections, iou_matrix
from faceveil.models.detectors import create_detector
from faceveil.models.embedders import create_embedder
from faceveil.models.face_attributes import (
    TEMPLATE_112,
    FaceAttributes,
    delta_e2000,
    face_attributes,
    head_pose,
    skin_lab,
)
from faceveil.models.put_back import face_mask, put_back
from faceveil.models.replace import PoolFace, Replacer, ReplaceSettings, one_torch_thread, track_seed

pytestmark = pytest.mark.slow  # builds the generated-face pool (~20 s) and optimises a face

MEDIA = "photos/astronaut.png"


# ---------------------------------------------------------------- pieces, without models


def _rotate(points, degrees, centre):
    a = np.radians(degrees)
    r = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    return (np.asarray(points) - centre) @ r.T + centre


def test_head_pose_from_five_landmarks():
    lm = TEMPLATE_112 * 2 + 100  # a frontal face, eyes 70 px apart
    centre = lm.mean(0)
    yaw, pitch, roll = head_pose(lm)
    assert abs(yaw) < 3 and abs(roll) < 1 and abs(pitch) < 5
    assert head_pose(_rotate(lm, 20, centre))[2] == pytest.approx(roll + 20, abs=1.5)
    turned = lm.copy()
    turned[2, 0] += 12  # the nose towards the image's right: the head turned that way
    assert head_pose(turned)[0] > yaw + 8
    lowered = lm.copy()
    lowered[2:, 1] += 6  # nose and mouth lower against the eyes: the head tilted down
    assert head_pose(lowered)[1] > pitch + 4


def test_put_back_changes_only_pixels_inside_the_landmark_ellipse_and_the_limit():
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (200, 240, 3), dtype=np.uint8)
    lm = (TEMPLATE_112 * 0.9 + [70, 40]).astype(np.float32)
    face = np.full((64, 64, 3), (200, 150, 120), np.uint8)
    cv2.circle(face, (32, 40), 10, (40, 20, 20), -1)
    out = frame.copy()
    limit = (0, 0, 240, 105)  # cuts the ellipse
    changed = put_back(out, lm, face, TEMPLATE_112 * 64 / 112, limit=limit)
    diff = (out != frame).any(2)
    assert diff.any() and not (diff & ~changed).any()
    assert not changed[105:].any()
    assert (changed <= face_mask(frame.shape, lm)).all()


def _pool_face(identity, attrs_shift=0.0):
    a = FaceAttributes(np.array([attrs_shift, 0, 0.0]), np.zeros(10), np.array([60.0, 10, 10]), 20.0, 2.0)
    v = np.asarray(identity, np.float32)
    return PoolFace(None, np.zeros((64, 64, 3), np.uint8), TEMPLATE_112 * 64 / 112, a, v / np.linalg.norm(v))


def test_pairing_takes_the_nearest_fake_not_within_the_margin_of_any_real_identity():
    rep = Replacer(None, None, None, ReplaceSettings(id_margin=0.7))
    e = np.eye(128, dtype=np.float32)
    rep._pool = [_pool_face(e[0] + e[1], 1.0), _pool_face(e[2], 5.0), _pool_face(e[3], 9.0)]
    target = FaceAttributes(np.zeros(3), np.zeros(10), np.array([60.0, 10, 10]), 40.0, 2.0)
    assert rep.pair(target, e[4][None]) == 0  # nearest in attributes
    assert rep.pair(target, np.stack([e[4], e[0]])) == 1  # fake 0 looks like another real person (cosine 0.71 >= 0.7)
    rep.settings = ReplaceSettings(id_margin=0.75)
    assert rep.pair(target, np.stack([e[4], e[0]])) == 0  # ... not within a looser margin
    assert rep.pair(target, e[4][None], avoid={0}) == 1  # already someone else's surrogate


def test_track_seeds_are_stable_and_distinct():
    assert track_seed(0, MEDIA, 3) == track_seed(0, MEDIA, 3)
    assert len({track_seed(0, MEDIA, t) for t in range(50)} | {track_seed(0, "other", 3)}) == 51


def test_the_search_runs_torch_on_one_thread_and_gives_the_count_back():
    import torch

    n = torch.get_num_threads()
    with one_torch_thread():
        assert torch.get_num_threads() == 1
        with one_torch_thread():  # nested (a person's surrogate that falls back to the face's own)
            assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == n


# ---------------------------------------------------------------- the method on a real face


@pytest.fixture(scope="module")
def models():
    return create_detector("centerface"), create_embedder("dlib-resnet")


@pytest.fixture(scope="module")
def astronaut(models):
    rgb = np.ascontiguousarray(data.astronaut())
    d = models[0].detect(rgb)
    face = d[[int(np.argmax(d.scores))]]
    face.track_ids[:] = 0
    return rgb, face


@pytest.fixture(scope="module")
def replaced(astronaut, models):
    """The astronaut's face replaced (track 0 of MEDIA), with the pool built first and timed apart."""
    rgb, face = astronaut
    anon = create_anonymizer("replace")
    t0 = time.perf_counter()
    anon.load()
    pool_s = time.perf_counter() - t0
    out = rgb.copy()
    t0 = time.perf_counter()
    anon.apply(out, face, media=MEDIA)
    return anon, out, time.perf_counter() - t0, pool_s


def test_replace_is_registered():
    assert "replace" in ANONYMIZERS.names()
    assert isinstance(create_anonymizer("replace"), Replace)


def test_replaced_face_is_still_a_face_of_another_identity(astronaut, replaced, models, figures):
    rgb, face = astronaut
    anon, out, seconds, pool_s = replaced
    detector, embedder = models
    s = anon.surrogates(MEDIA)[0]
    again = detector.detect(out)
    hit = iou_matrix(face.boxes, again.boxes)[0] if len(again) else np.zeros(0)
    assert len(hit) and hit.max() >= 0.5, "CenterFace no longer finds the replaced face"
    score = float(again.scores[int(np.argmax(hit))])
    assert score >= detector.threshold
    before = embedder.embed(rgb, face)[0]
    cos = float(embedder.embed(out, face)[0] @ before)
    assert cos < embedder.same_person_threshold
    assert cos < anon.settings.id_margin + 0.03
    f_orig = face_attributes(rgb, face.landmarks[0])
    j = int(np.argmax(hit))
    pose_err = np.abs(face_attributes(out, again.landmarks[j]).pose - f_orig.pose)
    de = float(delta_e2000(skin_lab(out, face.landmarks[0]), f_orig.skin))
    figures.append(
        f"replace (astronaut, {anon.replacer.generator.name}): identity cosine to the original "
        f"{s.cosine_start:.3f} (paired pool face) -> {cos:.3f} (replaced; dlib same-person 0.92, margin "
        f"{anon.settings.id_margin}); CenterFace score {float(face.scores[0]):.2f} -> {score:.2f}; "
        f"|yaw,pitch,roll| error {pose_err.round(1).tolist()} deg; skin dE2000 {de:.1f}; "
        f"{seconds:.2f} s for the face ({s.cpu_seconds:.2f} s CPU, {s.evals} evaluations; load average "
        f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores), pool of {len(anon.replacer.pool)} faces built "
        f"in {pool_s:.1f} s"
    )
    assert seconds < 30  # target <= 3 s on an idle 2-core machine; generous for a shared one


def test_pixels_outside_the_mask_are_unchanged(astronaut, replaced):
    rgb, face = astronaut
    anon, out, _, _ = replaced
    x1, y1, x2, y2 = anon.regions(face, rgb.shape[1], rgb.shape[0])[0]
    inside = face_mask(rgb.shape, face.landmarks[0])
    region = np.zeros(rgb.shape[:2], bool)
    region[y1:y2, x1:x2] = True
    changed = (out != rgb).any(2)
    assert changed.sum() > 0.5 * inside.sum()
    assert not (changed & ~(inside & region)).any()
    assert (out[~inside] == rgb[~inside]).all()


def test_same_track_same_surrogate_on_a_second_frame(astronaut, replaced, models, figures):
    rgb, face = astronaut
    anon, out1, _, _ = replaced
    detector, embedder = models
    first = anon.surrogates(MEDIA)[0]
    m = np.float32([[1, 0, 9], [0, 1, -5]])  # the next frame: the head moved
    frame2 = cv2.warpAffine(rgb, m, rgb.shape[1::-1], borderMode=cv2.BORDER_REFLECT)
    d2 = detector.detect(frame2)
    d2 = d2[[int(np.argmax(d2.scores))]]
    d2.track_ids[:] = 0
    out2 = frame2.copy()
    t0 = time.perf_counter()
    anon.apply(out2, d2, media=MEDIA)
    seconds = time.perf_counter() - t0
    assert anon.surrogates(MEDIA)[0] is first  # not made again
    assert seconds < 1.0
    e1, e2 = embedder.embed(out1, face)[0], embedder.embed(out2, d2)[0]
    stability = float(e1 @ e2)
    assert stability >= 0.9
    figures.append(
        f"replace: the same track on a second frame reuses its surrogate ({seconds * 1000:.0f} ms), "
        f"identity cosine between the two replaced faces {stability:.3f}"
    )
    # another media's track 0 is another person: a surrogate of its own
    other = rgb.copy()
    anon.apply(other, face, media="photos/another.png")
    assert anon.surrogates("photos/another.png")[0] is not first


def test_a_rerun_makes_the_same_surrogate(astronaut, replaced):
    rgb, face = astronaut
    anon, out1, _, _ = replaced
    fresh = create_anonymizer("replace")
    fresh._replacer = anon.replacer  # the same models and pool (deterministic: built from the same seed)
    out = rgb.copy()
    fresh.apply(out, face, media=MEDIA)
    a, b = anon.surrogates(MEDIA)[0], fresh.surrogates(MEDIA)[0]
    assert a.pool_index == b.pool_index and np.array_equal(a.latent.numpy(), b.latent.numpy())
    assert np.array_equal(out, out1)


def test_the_second_look_preview_replaces_without_optimising(astronaut, replaced):
    rgb, face = astronaut
    anon, _, _, _ = replaced
    untracked = Detections(face.boxes, face.scores, face.landmarks)
    t0 = time.perf_counter()
    out = anon.apply(rgb.copy(), untracked, preview=True)
    assert time.perf_counter() - t0 < 1.0
    assert (out != rgb).any()


def test_a_person_keeps_one_surrogate_across_photos(astronaut, replaced, models, figures):
    """`expect`: a second photo of the same person starts from the surrogate made from their best
    face, and keeps it where it still passes there (identity below the margin, still a face)."""
    rgb, face = astronaut
    anon, _, _, _ = replaced
    detector, embedder = models
    ident = embedder.embed(rgb, face)[0]
    t0 = time.perf_counter()
    person = anon.person_surrogate(rgb, face.boxes[0], face.landmarks[0], ident, ident[None], seed=7)
    made_s = time.perf_counter() - t0
    assert person.seed == 7 and person.cosine < anon.settings.id_margin
    m = np.float32([[0.85, 0.03, 40], [-0.03, 0.85, 30]])  # another photo: smaller, turned a little, elsewhere
    photo2 = cv2.warpAffine(rgb, m, rgb.shape[1::-1], borderMode=cv2.BORDER_REFLECT)
    d2 = detector.detect(photo2)
    d2 = d2[[int(np.argmax(d2.scores))]]
    d2.track_ids[:] = 0
    anon.expect("photos/second.png", [(d2.boxes[0] + 3, person)])  # matched by overlap, not exact boxes
    out2 = photo2.copy()
    t0 = time.perf_counter()
    anon.apply(out2, d2, media="photos/second.png")
    reuse_s = time.perf_counter() - t0
    got = anon.surrogates("photos/second.png")[0]
    # the person's surrogate, or a step or two from it where it did not quite pass here as it was
    drift = float(got.latent @ person.latent / (got.latent.norm() * person.latent.norm()))
    assert got.seed == person.seed and got.evals <= 3 and drift >= 0.85
    cos = float(embedder.embed(out2, d2)[0] @ embedder.embed(photo2, d2)[0])
    assert cos < anon.settings.id_margin
    figures.append(
        f"replace: a person's surrogate made in {made_s:.1f} s, reused on a second photo of them in "
        f"{reuse_s:.2f} s ({got.evals} evaluations, latent cosine to the person's {drift:.3f}; identity cosine to "
        f"the original there {cos:.3f})"
    )
    # a face that overlaps no expected box gets its own
    anon.expect("photos/third.png", [(np.float32([0, 0, 10, 10]), person)])
    anon.apply(photo2.copy(), d2, media="photos/third.png")
    assert anon.surrogates("photos/third.png")[0].seed != person.seed
