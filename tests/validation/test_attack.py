"""The re-identification attacks of `faceveil evaluate` (validation/attack.py) on synthetic data: a
gallery search on embeddings chosen here, and the whole attack on images written to disk with a
stand-in detector (one fixed face box) and embedder (the face's pixels, downsampled)."""

import math

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from faceveil.models.anonymizers import MaskSettings
from faceveil.models.detections import Detections
from faceveil.storage.paths import Location
from faceveil.validation.attack import Gallery, LabelledFace, attack, labelled_photos, manifest_box, probe_vectors

BOX = (24.0, 24.0, 72.0, 72.0)


def _gallery(vectors: np.ndarray, labels: list[str], data: str = ".") -> Gallery:
    one = Detections(np.array([BOX]), np.ones(1))
    entries = [
        LabelledFace(f"faces/{lab}/{i}.png", lab, one, one, v) for i, (v, lab) in enumerate(zip(vectors, labels))
    ]
    return Gallery(data, entries)


def _labels(n_ids: int, per_id: int) -> list[str]:
    return [f"id{i:02d}" for i in range(n_ids) for _ in range(per_id)]


def test_identical_embeddings_are_all_reidentified():
    rng = np.random.default_rng(0)
    labels = _labels(10, 3)
    centres = rng.normal(size=(10, 64))
    vecs = np.repeat(centres, 3, axis=0) + 0.05 * rng.normal(size=(30, 64))  # each person's photos alike
    g = _gallery(vecs, labels)
    hit, rate = g.rate(g.vectors, g.vectors, threshold=0.9)
    assert g.eligible.all() and hit.all() and rate == 1.0
    assert g.answered(g.vectors, g.vectors, 0.9).all()
    # the same probes at a threshold no cosine reaches: nothing answered, nothing re-identified
    hit, rate = g.rate(g.vectors, g.vectors, threshold=1.01)
    assert rate == 0.0 and not hit.any() and not g.answered(g.vectors, g.vectors, 1.01).any()


def test_random_probes_are_reidentified_at_chance():
    rng = np.random.default_rng(1)
    n_ids, per_id = 40, 5
    labels = _labels(n_ids, per_id)
    g = _gallery(rng.normal(size=(n_ids * per_id, 32)), labels)
    rates = [g.rate(rng.normal(size=g.vectors.shape), g.vectors, threshold=-1.0)[1] for _ in range(20)]
    # rank-1 among the other n-1 photos, per_id-1 of them the probe's own identity
    chance = (per_id - 1) / (n_ids * per_id - 1)
    sd = math.sqrt(chance * (1 - chance) / (len(rates) * len(labels)))
    assert abs(np.mean(rates) - chance) < 4 * sd, (np.mean(rates), chance)
    assert np.mean(rates) < 0.1  # far below the 1.0 of matching embeddings
    # a probe that is its own photo exactly is not matched with that photo (left out of its search)
    own = g.rate(g.vectors, g.vectors, threshold=-1.0)[1]
    assert own < 0.1 and g.answered(g.vectors, g.vectors, 0.99).sum() == 0


def test_a_probe_without_another_photo_of_its_identity_does_not_count():
    rng = np.random.default_rng(2)
    vecs = rng.normal(size=(5, 16))
    g = _gallery(vecs, ["a", "a", "b", "b", "lonely"])
    assert g.eligible.tolist() == [True, True, True, True, False]
    probes = vecs.copy()
    probes[:2] = vecs[[1, 0]]  # a's probes are the other photo of a: found
    probes[2:4] = vecs[[0, 0]]  # b's probes look like a: not found
    hit, rate = g.rate(probes, vecs, threshold=0.5)
    assert hit.tolist()[:4] == [True, True, False, False] and rate == 0.5
    assert math.isnan(_gallery(vecs[:2], ["a", "b"]).rate(vecs[:2], vecs[:2], 0.5)[1])  # nobody eligible


def test_labelled_photos_under_faces_or_in_a_folder_named_faces(tmp_path):
    files = [
        ("faces/ann/1.jpg", "image"),
        ("faces/ann/2.jpg", "image"),
        ("faces/bob/1.png", "image"),
        ("faces/bob/clip.mp4", "video"),
        ("faces/loose.jpg", "image"),
        ("other/ann/1.jpg", "image"),
    ]
    (tmp_path / "set" / "faces").mkdir(parents=True)
    assert labelled_photos(str(tmp_path / "set"), files) == [
        ("faces/ann/1.jpg", "ann"),
        ("faces/ann/2.jpg", "ann"),
        ("faces/bob/1.png", "bob"),
    ]
    (tmp_path / "faces").mkdir(exist_ok=True)
    inside = [(rel.split("/", 1)[1], kind) for rel, kind in files if rel.startswith("faces/")]
    assert labelled_photos(str(tmp_path / "faces"), inside) == [
        ("ann/1.jpg", "ann"),
        ("ann/2.jpg", "ann"),
        ("bob/1.png", "bob"),
    ]


class OneBox:
    """The attacker's detector: one face at BOX in every photo."""

    def detect(self, rgb):
        return Detections(np.array([BOX]), np.ones(1))


class Pixels:
    """The attacker's embedder: the face's pixels at 8x8 (grey, mean removed): alike for copies of
    a face, zero for a uniform mask."""

    def embed(self, rgb, dets):
        out = []
        for x1, y1, x2, y2 in np.round(dets.boxes).astype(int):
            crop = rgb[y1:y2, x1:x2].astype(np.float64).mean(2)
            h, w = crop.shape
            small = crop[: h // 8 * 8, : w // 8 * 8].reshape(8, h // 8, 8, w // 8).mean((1, 3)).ravel()
            small -= small.mean()
            out.append(small / max(np.linalg.norm(small), 1e-12))
        return np.asarray(out, np.float32)


@pytest.fixture
def archive(tmp_path):
    """DATA: three people, two photos each (the same face texture, slightly noisy, on other
    backgrounds); DEST: unchanged copies of those photos as the 'anonymized' outputs."""
    rng = np.random.default_rng(3)
    photos = []
    for person in ("ann", "bob", "cid"):
        face = rng.integers(0, 256, (48, 48, 3))
        for k in range(2):
            rgb = rng.integers(0, 256, (96, 96, 3))
            rgb[24:72, 24:72] = np.clip(face + rng.normal(0, 8, face.shape), 0, 255)
            rel = f"faces/{person}/{k}.png"
            for root in ("data", "dest"):
                (tmp_path / root / f"faces/{person}").mkdir(parents=True, exist_ok=True)
                Image.fromarray(rgb.astype(np.uint8)).save(tmp_path / root / rel)
            photos.append((rel, person))
    media = pd.DataFrame(
        {
            "rel_path": [r for r, _ in photos],
            "status": "ok",
            "output_path": [r for r, _ in photos],
            "media_id": [f"m{i}" for i in range(len(photos))],
        }
    )
    gallery = Gallery.build(str(tmp_path / "data"), photos, OneBox(), Pixels())
    return gallery, Location(str(tmp_path / "dest")), media


def _detections(media, box=BOX) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "media_id": media.media_id,
            "x1": box[0],
            "y1": box[1],
            "x2": box[2],
            "y2": box[3],
            "score": 0.9,
            "landmarks": [np.full(10, np.nan)] * len(media),
        }
    )


def test_unanonymized_outputs_are_reidentified_and_a_solid_mask_is_not(archive):
    gallery, dest, media = archive
    assert len(gallery) == 6 and gallery.eligible.all() and gallery.identities == ["ann", "bob", "cid"]
    a = attack(gallery, "solid", MaskSettings(), dest, media, _detections(media), 0.5, Pixels())
    # outputs left as they were: every probe finds the other photo of its person
    assert a["probes"] == 6 and a["direct"] == 1.0 and a["direct_answered"] == 1.0 and a["either"] == 1.0
    # the parrot gallery is solid-masked (no face pixels left): nothing there reaches the threshold
    assert a["parrot"] == 0.0 and a["parrot_answered"] == 0.0 and a["rate"] == 1.0
    assert a["probe_boxes"] == {"probes": 6, "at_manifest_box": 6, "at_attacker_box": 0, "no_output": 0}
    # the outputs masked the way the attacker's parrot gallery is: no attack succeeds
    from faceveil.models.anonymizers import create_anonymizer
    from faceveil.storage.media import read_image

    solid = create_anonymizer("solid", MaskSettings())
    for rel in media.output_path:
        rgb, _ = read_image(dest.path(rel))
        Image.fromarray(solid.apply(rgb, OneBox().detect(rgb))).save(dest.path(rel))
    a = attack(gallery, "solid", MaskSettings(), dest, media, _detections(media), 0.5, Pixels())
    assert a["direct"] == a["parrot"] == a["either"] == a["rate"] == 0.0


def test_a_failed_media_is_never_reidentified_and_far_boxes_fall_back(archive):
    gallery, dest, media = archive
    media.loc[0, "status"] = "failed"
    far = _detections(media, (0.0, 0.0, 10.0, 10.0))  # no manifest face where the labelled face is
    probes, counts = probe_vectors(gallery, dest, media, far, Pixels())
    assert counts == {"probes": 6, "at_manifest_box": 0, "at_attacker_box": 5, "no_output": 1}
    assert np.isnan(probes[0]).all() and not np.isnan(probes[1:]).any()
    a = attack(gallery, "solid", MaskSettings(), dest, media, far, 0.5, Pixels())
    assert a["direct"] == pytest.approx(5 / 6)  # the other five are unchanged copies, found at the attacker's box
    primary = gallery.primary[0]
    assert manifest_box(far[:1], primary) is primary
    near = _detections(media[:1], (26.0, 22.0, 70.0, 74.0))
    assert manifest_box(near, primary).boxes.tolist() == [[26.0, 22.0, 70.0, 74.0]]
