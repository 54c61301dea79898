"""The per-face fallback chain of identity replacement (models/fallback): its order, the judging loop
(with a stand-in anonymizer whose 'identity cosines' are a table), the small-face rule, and a real face
forced through every step (slow: the generated-face pool)."""

import time
from types import SimpleNamespace

import numpy as np
import pytest
from skimage import data

from faceveil.models.anonymizers import Replace
from faceveil.models.detections import Detections
from faceveil.models.fallback import (
    as_published,
    FALLBACKS,
    MIN_JUDGED_SIZE,
    judge,
    next_method,
    passes,
    solid,
    strong_settings,
)
from faceveil.models.replace import Replacer, ReplaceSettings, Surrogate


def test_the_chain_ends_solid_and_the_strong_search_is_stronger():
    assert FALLBACKS == ("replace", "replace-strong", "generated", "solid")
    assert [next_method(m) for m in FALLBACKS] == ["replace-strong", "generated", "solid", "solid"]
    s = ReplaceSettings()
    st = strong_settings(s)
    assert st.es_evals > s.es_evals and st.es_sigma > s.es_sigma and st.id_margin < s.id_margin
    assert st.min_search_size == 0 and st.pool_seed == s.pool_seed
    g = s.id_guard
    assert g > 0 and passes(s.id_margin - g - 1e-3, s) and not passes(s.id_margin - g / 2, s)  # headroom
    assert not passes(s.id_margin, s)


class _Stand:
    """A stand-in for the Replace anonymizer: each surrogate is its method, rendered as a number in row 0
    of the frame (column = face); its 'embedder' reads those back as identity cosines from `cosines`."""

    def __init__(self, cosines: dict):
        self.settings = ReplaceSettings()
        self.cosines, self.made = cosines, []
        self.replacer = SimpleNamespace(embedder=self)

    def surrogate(self, rgb, dets, j, media, region, method="replace", before=None, identities=None):
        self.made.append((j, method))
        return solid(j) if method == "solid" else Surrogate(None, None, None, j, j, method=method)

    def render(self, rgb, dets, regions, chosen):
        for j, s in chosen.items():
            rgb[0, j] = FALLBACKS.index(s.method) + 1

    def embed(self, rgb, dets):
        c = [
            1.0 if rgb[0, j, 0] == 0 else self.cosines.get((j, FALLBACKS[rgb[0, j, 0] - 1]), 0.5)
            for j in dets.track_ids
        ]
        return np.array([[v, np.sqrt(1 - v * v)] for v in c], np.float32)


def test_each_face_walks_the_chain_until_it_passes_or_is_filled():
    high = 0.9  # at or above the margin: the face still shows its person
    stand = _Stand(
        {
            (0, "replace"): 0.8,
            (1, "replace"): high,
            (1, "replace-strong"): 0.7,
            (2, "replace"): high,
            (2, "replace-strong"): high,
            (2, "generated"): high,
        }
    )
    dets = Detections(np.tile(np.float32([10, 10, 60, 60]), (3, 1)), [0.9] * 3, track_ids=np.arange(3))
    original = np.zeros((4, 8, 3), np.uint8)
    rgb = original.copy()
    chosen = {j: stand.surrogate(original, dets, j, "m", None) for j in range(3)}
    stand.render(rgb, dets, None, chosen)
    judge(
        stand, rgb, original, dets, np.zeros((3, 4)), chosen, "m", published=lambda x: x
    )  # the stand-in's pixels are codes
    assert [chosen[j].method for j in range(3)] == ["replace", "replace-strong", "solid"]
    assert stand.made[3:] == [(1, "replace-strong"), (2, "replace-strong"), (2, "generated"), (2, "solid")]
    assert chosen[0].cosine == pytest.approx(0.8) and chosen[1].cosine == pytest.approx(0.7)
    assert all(s.judged for s in chosen.values())
    assert rgb[0, :3, 0].tolist() == [1, 2, 4]  # the frame made again with each face's last method


class _Covering(_Stand):
    """Face 0's first surrogate passes while face 1 is a face, but reads 0.9 once face 1's fill covers it."""

    def embed(self, rgb, dets):
        out = super().embed(rgb, dets)
        if rgb[0, 1, 0] == FALLBACKS.index("solid") + 1 and rgb[0, 0, 0] == 1 and 0 in dets.track_ids:
            out[list(dets.track_ids).index(0)] = [0.9, np.sqrt(1 - 0.81)]
        return out


def test_a_face_that_passed_is_judged_again_when_a_neighbour_changes():
    stand = _Covering(
        {
            (0, "replace"): 0.8,
            (1, "replace"): 0.9,
            (1, "replace-strong"): 0.9,
            (1, "generated"): 0.9,
            (0, "replace-strong"): 0.7,
        }
    )
    dets = Detections(np.tile(np.float32([10, 10, 60, 60]), (2, 1)), [0.9] * 2, track_ids=np.arange(2))
    original = np.zeros((4, 8, 3), np.uint8)
    rgb = original.copy()
    chosen = {j: stand.surrogate(original, dets, j, "m", None) for j in range(2)}
    stand.render(rgb, dets, None, chosen)
    judge(stand, rgb, original, dets, np.zeros((2, 4)), chosen, "m", published=lambda x: x)
    assert chosen[1].method == "solid"
    assert chosen[0].method == "replace-strong" and chosen[0].cosine == pytest.approx(0.7)  # judged in the final frame
    assert (0, "replace-strong") in stand.made


def test_the_second_look_keeps_a_new_face_inside_its_region_for_itself():
    from faceveil.models.second_look import second_look

    class _Finds:
        def detect(self, rgb):  # a "face" inside the first one's region (the new face put there) and one apart
            return Detections(np.float32([[30, 15, 50, 35], [100, 10, 130, 40]]), [0.8, 0.8])

    class _Puts(Replace):
        def apply(self, rgb, dets, region_key=None, *, media="", preview=False):
            return rgb

    dets = Detections(np.float32([[10, 10, 60, 60]]), [0.9])
    rgb = np.zeros((80, 160, 3), np.uint8)
    found = second_look(rgb, dets, _Puts(), _Finds())
    assert found.boxes.tolist() == [[10, 10, 60, 60], [100, 10, 130, 40]]
    from faceveil.models.anonymizers import Mosaic

    class _Masks(Mosaic):
        def apply(self, rgb, dets, region_key=None, *, media="", preview=False):
            return rgb

    assert len(second_look(rgb, dets, _Masks(), _Finds())) == 3  # a mask keeps every new look


def _small_face_frame():
    rgb = np.random.default_rng(0).integers(0, 256, (120, 160, 3), dtype=np.uint8)
    side = MIN_JUDGED_SIZE - 4  # a bystander too small for dlib to judge
    box = np.float32([[150 - side, 40, 150, 40 + side]])  # at the frame's edge
    return rgb, Detections(box, [0.8], track_ids=np.array([0]))


def test_a_face_too_small_to_judge_is_filled_without_a_model():
    rgb, dets = _small_face_frame()
    anon = Replace()
    anon._replacer = SimpleNamespace()  # no generator, detector or embedder is needed (nor loaded)
    out = anon.apply(rgb.copy(), dets, media="m")
    s = anon.surrogates("m")[0]
    assert s.method == "solid" and s.judged and s.seed != 0
    x1, y1, x2, y2 = anon.regions(dets, rgb.shape[1], rgb.shape[0])[0]
    inside = np.zeros(rgb.shape[:2], bool)
    inside[y1:y2, x1:x2] = True
    assert len(np.unique(out[inside], axis=0)) == 1  # one colour
    assert (out[~inside] == rgb[~inside]).all()
    assert anon.surrogates("m")[0] is s and (anon.apply(rgb.copy(), dets, media="m") == out).all()  # the track keeps it
    preview = anon.apply(
        rgb.copy(), Detections(dets.boxes, dets.scores), preview=True
    )  # the second look sees it filled
    assert (preview == out).all()


@pytest.mark.slow  # the generated-face pool (~20 s) and three searches
def test_a_face_that_fails_every_identity_check_ends_solid_and_says_so(figures):
    """id_margin -1: no face can pass, so the astronaut's face walks replace, replace-strong, generated
    and is filled; the generated step takes the pool face least like her of those not tried yet."""
    from faceveil.models.detectors import create_detector
    from faceveil.models.embedders import create_embedder
    from faceveil.models.generators import create_generator

    rgb = np.ascontiguousarray(data.astronaut())
    d = create_detector("centerface").detect(rgb)
    face = d[[int(np.argmax(d.scores))]]
    face.track_ids[:] = 0
    settings = ReplaceSettings(id_margin=-1.0)
    anon = Replace(settings=settings)
    anon._replacer = Replacer(
        create_generator("dcgan-digiface"), create_detector("centerface"), create_embedder("dlib-resnet"), settings
    )
    steps, step = [], anon.chain.step
    anon.chain.step = lambda method, f: (steps.append((method, f)), step(method, f))[1]
    t0 = time.perf_counter()
    _ = anon.replacer.pool
    pool_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    out = anon.apply(rgb.copy(), face, media="m")
    seconds = time.perf_counter() - t0
    s = anon.surrogates("m")[0]
    assert [m for m, _ in steps] == list(FALLBACKS) and s.method == "solid"
    x1, y1, x2, y2 = anon.regions(face, rgb.shape[1], rgb.shape[0])[0]
    assert len(np.unique(out[y1:y2, x1:x2].reshape(-1, 3), axis=0)) == 1
    f = steps[2][1]
    generated = anon.chain.generated(f)
    sims = np.stack([p.identity for p in anon.replacer.pool]) @ f.identity
    sims[list(f.avoid)] = np.inf  # the pool faces the searches before it used
    assert generated.pool_index == int(np.argmin(sims)) and f.avoid  # the farthest pool face from her left
    figures.append(
        f"fallback chain, every step forced to fail (astronaut): {' -> '.join(m for m, _ in steps)} in "
        f"{seconds:.1f} s (pool {pool_s:.1f} s); the generated step's pool face at identity cosine "
        f"{generated.cosine_start:.3f} to her"
    )


def test_faces_are_judged_as_published():
    rng = np.random.default_rng(0)
    rgb = np.clip(rng.normal(128, 30, (64, 80, 3)), 0, 255).astype(np.uint8)
    out = as_published(rgb)
    assert out.shape == rgb.shape and out.dtype == np.uint8
    diff = np.abs(out.astype(int) - rgb).mean()
    assert 0 < diff < 20  # what JPEG at the published quality changes, and only that much
    assert np.abs(as_published(out).astype(int) - out).mean() < diff  # a second round trip changes less


def test_a_box_inside_a_larger_face_is_its_part():
    """CenterFace's boxes on a large face in a shared photo: one on its mouth and chin (inside), two apart."""
    from faceveil.models.detections import nested

    d = Detections(
        np.float32([[803, 294, 1463, 1120], [864, 791, 1339, 986], [1626, 865, 1982, 1345], [162, 948, 416, 1231]]),
        [0.9, 0.6, 0.5, 0.3],
    )
    assert nested(d).tolist() == [False, True, False, False]
    side_by_side = Detections(np.float32([[0, 0, 100, 100], [60, 0, 160, 100]]), [0.9, 0.9])  # two heads touching
    assert not nested(side_by_side).any()


def test_the_judge_reuses_the_original_identities_it_is_given():
    """The anonymizer's `surrogate` already ran dlib on each original face: the judge reads those vectors
    (dlib only on the frames as published) and hands the same dict to every further step."""
    stand = _Stand({(0, "replace"): 0.9, (0, "replace-strong"): 0.7})
    frames, steps = [], []
    embed, surrogate = stand.embed, stand.surrogate
    stand.embed = lambda rgb, dets: (frames.append(rgb.copy()), embed(rgb, dets))[1]
    stand.surrogate = lambda *a, identities=None, **k: (steps.append(identities), surrogate(*a, **k))[1]
    dets = Detections(np.float32([[10, 10, 60, 60]]), [0.9], track_ids=np.arange(1))
    original = np.zeros((4, 8, 3), np.uint8)
    rgb = original.copy()
    chosen = {0: surrogate(original, dets, 0, "m", None)}
    stand.render(rgb, dets, None, chosen)
    identities = {0: np.float32([1.0, 0.0])}  # the original's vector, as the anonymizer computed it
    judge(stand, rgb, original, dets, np.zeros((1, 4)), chosen, "m", published=lambda x: x, identities=identities)
    assert chosen[0].method == "replace-strong" and chosen[0].cosine == pytest.approx(0.7)
    assert (
        len(steps) == 1 and steps[0] is identities and len(frames) == 2
    )  # one look per round, both at the frame as made
    assert all(f[0, 0, 0] != 0 for f in frames)  # never the original (its vector was given)
    again = {0: surrogate(original, dets, 0, "m", None)}
    fresh: dict = {}
    judge(stand, rgb, original, dets, np.zeros((1, 4)), again, "m", published=lambda x: x, identities=fresh)
    assert 0 in fresh  # computed when missing, and kept for the steps after


def test_the_replacers_centerface_runs_on_one_thread(monkeypatch):
    """Its inputs are one face's crop or a generated face: a second onnxruntime thread only spins."""
    import faceveil.models.embedders as embedders
    import faceveil.models.generators as generators
    from faceveil.models.anonymizers.replace import REPLACER_DETECTOR_THREADS

    monkeypatch.setattr(generators, "create_generator", lambda *a, **k: SimpleNamespace())  # no weights needed
    monkeypatch.setattr(embedders, "create_embedder", lambda *a, **k: SimpleNamespace())
    assert REPLACER_DETECTOR_THREADS == 1 and Replace().replacer.detector.settings.threads == 1
