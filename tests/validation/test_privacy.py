"""Privacy metrics on real photos: an output that still shows the face leaks and is re-identified,
a masked one is not; the attacker's identification, stability and consistency measures."""

import math

import numpy as np
import pytest
from skimage import data

from faceveil.models.anonymizers import create_anonymizer
from faceveil.models.detectors import DetectorSettings, create_detector
from faceveil.models.embedders import create_embedder
from faceveil.validation.identity import identified, identity_stability, pose_error, surrogate_consistency
from faceveil.validation.privacy import CheckSettings, FrameChecks, sample_frames, summarize


@pytest.fixture(scope="module")
def astronaut():
    rgb = np.ascontiguousarray(data.astronaut())
    return rgb, create_detector("centerface").detect(rgb)


@pytest.fixture(scope="module")
def checks_of():
    low, emb = create_detector("centerface", DetectorSettings(threshold=0.3)), create_embedder()
    return lambda frames: FrameChecks("m", frames, [("centerface", low)], emb)


def test_an_unmasked_output_leaks_and_is_reidentified(astronaut, checks_of):
    rgb, dets = astronaut
    checks = checks_of({0})
    regions = create_anonymizer("solid").regions(dets, rgb.shape[1], rgb.shape[0])
    checks.add(0, rgb, rgb.copy(), dets, regions)  # an "anonymizer" that changed nothing
    s = summarize(checks.frame_rows(), checks.face_rows(), 0.92)
    assert s["leak"]["faces_found"] >= 1 and s["leak"]["rate"] >= 0.5  # an unchanged mask region hides nothing
    assert checks.leaks() and checks.leaks()[0]["frame_index"] == 0
    assert s["reid"]["rate"] == 1.0 and s["reid"]["mean_cosine"] == pytest.approx(1.0, abs=1e-5)
    assert s["utility"]["still_face_rate"] == 1.0 and s["utility"]["pose_error"] == pytest.approx(0, abs=1e-6)
    assert s["utility"]["face_ssim"] == pytest.approx(1.0) and s["utility"]["background_psnr"] == math.inf


@pytest.mark.parametrize("method", ["solid", "mosaic"])
def test_a_masked_output_neither_leaks_nor_matches(astronaut, checks_of, method):
    rgb, dets = astronaut
    anon = create_anonymizer(method)
    out = anon.apply(rgb.copy(), dets)
    checks = checks_of({0})
    checks.add(0, rgb, out, dets, anon.regions(dets, rgb.shape[1], rgb.shape[0]))
    s = summarize(checks.frame_rows(), checks.face_rows(), 0.938)
    assert s["leak"]["faces_found"] == 0 and s["leak"]["rate"] == 0.0
    assert s["utility"]["still_face_rate"] == 0.0 and s["utility"]["face_ssim"] < 0.6
    assert s["reid"]["faces_checked"] == len(dets) and s["reid"]["mean_cosine"] < 0.938
    emb = checks.embeddings()
    assert emb["original"].shape == emb["anonymized"].shape == (len(dets), 128)


def test_a_frame_without_faces_is_checked_for_leaks_only(checks_of):
    empty = np.zeros((120, 160, 3), np.uint8)
    from faceveil.models.detections import Detections

    for frames in ({0}, set()):
        checks = checks_of(frames)
        if frames:
            checks.add(0, empty, empty.copy(), Detections.empty(), np.zeros((0, 4), np.int32))
        emb = checks.embeddings()
        assert emb["original"].shape == emb["anonymized"].shape == (0, 128)
        assert len(checks.frame_rows()) == len(frames) and checks.face_rows() == []


def test_identification_needs_the_right_label_and_the_threshold():
    rng = np.random.default_rng(0)
    gallery = rng.normal(size=(6, 16))
    labels = np.array(["a", "a", "b", "b", "c", "c"])
    probes = gallery[[0, 2, 4]] + rng.normal(scale=0.05, size=(3, 16))
    assert identified(probes, ["a", "b", "c"], gallery, labels, 0.9).all()
    assert not identified(probes, ["b", "c", "a"], gallery, labels, 0.9).any()  # best match has another label
    assert not identified(probes, ["a", "b", "c"], gallery, labels, 0.9999).any()  # below the threshold
    own = np.zeros((3, 6), bool)
    own[[0, 1, 2], [0, 2, 4]] = True  # leave each probe's own photo out: the others are far
    assert not identified(probes, ["a", "b", "c"], gallery, labels, 0.9, exclude=own).any()


def test_stability_consistency_pose_and_sampling():
    e = np.eye(4)
    # track 1 keeps one identity, track 2 flickers between two
    assert identity_stability([1, 1, 1], [0, 1, 2], e[[0, 0, 0]]) == pytest.approx(1.0)
    assert identity_stability([2, 2, 2], [0, 1, 2], e[[0, 1, 0]]) == pytest.approx(0.0)
    assert math.isnan(identity_stability([1], [0], e[[0]]))
    orig = e[[0, 0, 1]]  # tracks 1 and 2 are the same person, 3 another
    assert surrogate_consistency([1, 2, 3], orig, e[[2, 2, 3]], 0.9) == 1.0
    assert surrogate_consistency([1, 2, 3], orig, e[[2, 3, 3]], 0.9) == 0.0
    assert math.isnan(surrogate_consistency([1, 2], e[[0, 1]], e[[2, 3]], 0.9))
    lm = np.arange(10, dtype=float).reshape(1, 5, 2)
    assert pose_error(lm, lm + [3, 4], [50.0])[0] == pytest.approx(5 / 50)
    assert sample_frames(100, 25, CheckSettings(every_s=1.0)) == {0, 25, 50, 75}
    assert len(sample_frames(100_000, 30, CheckSettings(every_s=1.0, max_frames=60))) == 60
    assert sample_frames(10, 25, CheckSettings(every_s=0)) == set()
    # at least min_frames, spread evenly (a 2 s clip still gets consecutive checked faces), never more than it has
    assert sample_frames(60, 30, CheckSettings(every_s=4.0, min_frames=5)) == {0, 15, 30, 44, 59}
    assert sample_frames(3, 30, CheckSettings(every_s=4.0, min_frames=5)) == {0, 1, 2}
    assert sample_frames(600, 30, CheckSettings(every_s=1.0, min_frames=5)) == set(range(0, 600, 30))
    from faceveil.config import AnonymizeConfig

    assert AnonymizeConfig.of("a", "b", method="replace").check_settings().min_frames == 5
    assert AnonymizeConfig.of("a", "b", method="blur").check_settings().min_frames == 1


def test_the_leak_gate_sees_faces_outside_the_masks_with_either_family(astronaut):
    """A face another detector family finds where nothing was masked is a leak; inside a mask that
    changed the pixels it is not."""
    from faceveil.models.detections import Detections

    rgb, dets = astronaut
    gate = [
        ("centerface", create_detector("centerface", DetectorSettings(threshold=0.1))),
        ("blazeface", create_detector("blazeface", DetectorSettings(threshold=0.5))),
    ]
    anon = create_anonymizer("mosaic")
    for name, d in gate:  # each family alone finds the astronaut's face
        assert len(d.detect(rgb)) >= 1, name
    missed = FrameChecks("m", {0}, gate[1:])  # the pipeline found no face: nothing masked
    missed.add(0, rgb, rgb.copy(), Detections.empty(), np.zeros((0, 4), np.int32))
    assert missed.leak_rate() == 1.0 and missed.leaks()[0]["faces"][0]["detector"] == "blazeface"
    masked = FrameChecks("m", {0}, gate)
    masked.add(0, rgb, anon.apply(rgb.copy(), dets), dets, anon.regions(dets, rgb.shape[1], rgb.shape[0]))
    assert masked.leaks() == [] and masked.leak_rate() == 0.0


def test_identity_checks_are_bounded_and_cover_tracks_first():
    """A crowd: 40 faces in each of 5 checked frames, 24 identity checks for the whole media, each of
    them on a face of a track not checked before (40 tracks), none on a face too small to embed."""
    from faceveil.models.detections import Detections

    class Counting:
        dim, same_person_threshold, calls = 4, 0.9, 0

        def embed(self, rgb, dets):
            Counting.calls += len(dets)
            return np.tile(np.eye(4, dtype=np.float32)[0], (len(dets), 1))

    class NoFaces:
        def detect(self, rgb):
            return Detections.empty()

    rgb = np.zeros((400, 800, 3), np.uint8)
    x = np.arange(40) % 20 * 40.0
    y = np.arange(40) // 20 * 150.0
    size = np.where(np.arange(40) < 36, 30.0, 10.0)  # four faces too small for an identity check
    boxes = np.stack([x, y, x + size, y + size], 1)
    checks = FrameChecks(
        "m", set(range(5)), [("none", NoFaces())], Counting(), settings=CheckSettings(identity_faces=24)
    )
    for f in range(5):
        order = np.random.default_rng(f).permutation(40)
        dets = Detections(boxes[order], np.ones(40), track_ids=order)
        checks.add(f, rgb, rgb.copy(), dets, np.zeros((40, 4), np.int32))
    rows = [r for r in checks.face_rows() if not math.isnan(r["reid_cosine"])]
    assert Counting.calls == 2 * len(rows) == 2 * 24
    assert len({r["track_id"] for r in rows}) == 24 and all(r["size"] >= 24 for r in rows)
    assert checks.embeddings()["original"].shape == (24, 4)


def test_a_face_only_the_output_shows_is_not_a_leak(astronaut):
    """A leak is a face of the input: what the gate sees in the output but the original does not show
    there (compression noise, a mask's blocks read as a face) reveals no one; a face the original
    shows counts (a missed face, a masking slip)."""
    from faceveil.models.detections import Detections

    rgb, _ = astronaut
    blank = np.full_like(rgb, 90)
    gate = [("centerface", create_detector("centerface", DetectorSettings(threshold=0.15)))]
    confirm = [("centerface", create_detector("centerface", DetectorSettings(threshold=0.2)))]
    none = np.zeros((0, 4), np.int32)
    checks = FrameChecks("m", {0}, gate, confirm=confirm)
    checks.add(0, blank, rgb.copy(), Detections.empty(), none)  # a "face" only the output shows
    assert checks.leaks() == [] and checks.leak_rate() == 0.0
    checks = FrameChecks("m", {0}, gate, confirm=confirm)
    checks.add(0, rgb, rgb.copy(), Detections.empty(), none)  # in the original too: a missed face
    assert checks.leaks() and checks.leak_rate() == 1.0


class _CropHashEmbedder:
    """Unit vectors from a hash of each face's pixels: two crops that differ at all are other people."""

    same_person_threshold = 0.92

    def embed(self, rgb, dets):
        import hashlib

        out = []
        for x1, y1, x2, y2 in np.round(dets.boxes).astype(int):
            seed = int.from_bytes(hashlib.sha256(rgb[y1:y2, x1:x2].tobytes()).digest()[:4], "little")
            v = np.random.default_rng(seed).normal(size=128)
            out.append(v / np.linalg.norm(v))
        return np.array(out, np.float32)


@pytest.mark.parametrize(
    "replaced, embedder, leaks",
    [
        (False, _CropHashEmbedder(), True),  # masking methods: a region this similar hides nothing
        (True, _CropHashEmbedder(), False),  # replace: it shows someone else, by the embedder
        (True, None, True),  # no embedder to tell: judged by SSIM, fail closed
    ],
)
def test_a_replaced_face_is_judged_by_identity_not_by_change(astronaut, replaced, embedder, leaks):
    """A replaced face may keep most of the original's look (high SSIM) yet be another person; where
    faces are replaced the gate asks the embedder whether the region still shows the same person."""
    rgb, dets = astronaut
    gate = [("centerface", create_detector("centerface", DetectorSettings(threshold=0.15)))]
    regions = create_anonymizer("solid").regions(dets, rgb.shape[1], rgb.shape[0])
    out = rgb.copy()
    x1, y1, x2, y2 = regions[0]
    noise = np.random.default_rng(0).integers(-3, 4, out[y1:y2, x1:x2].shape)
    out[y1:y2, x1:x2] = np.clip(out[y1:y2, x1:x2].astype(int) + noise, 0, 255).astype(np.uint8)
    checks = FrameChecks("m", {0}, gate, embedder, settings=CheckSettings(replaced=replaced))
    checks.add(0, rgb, out, dets, regions)
    assert bool(checks.leaks()) is leaks


def test_replace_keeps_its_face_leak_when_it_is_the_same_person(astronaut):
    """The identity judgement does not wave through a region that still shows the person (dlib)."""
    rgb, dets = astronaut
    gate = [("centerface", create_detector("centerface", DetectorSettings(threshold=0.15)))]
    regions = create_anonymizer("solid").regions(dets, rgb.shape[1], rgb.shape[0])
    checks = FrameChecks("m", {0}, gate, create_embedder(), settings=CheckSettings(replaced=True))
    checks.add(0, rgb, rgb.copy(), dets, regions)
    assert checks.leaks() and checks.leak_rate() > 0
