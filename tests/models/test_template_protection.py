"""Protected identity templates (models/template_protection.py): the sealed templates the index stores keep
search exact under one key, do not link across keys, and give a known-pair attacker nothing; the
old rotation is shown to fall to the same attacker (so these checks can fail)."""

from __future__ import annotations

import numpy as np
import pytest

from faceveil.models.template_protection import (
    TRANSFORMS,
    IndexTemplates,
    OrthogonalRotation,
    SealedTemplates,
    TemplateOpenError,
)
from faceveil.storage.keys import MasterKey

DIM, PEOPLE, SHOTS = 128, 21, 5


def unit(x):
    x = np.asarray(x, np.float64)
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def clusters(seed: int, people: int = PEOPLE, shots: int = SHOTS):
    """Face-like synthetic clusters: `shots` unit vectors around each person's centre (same-person
    cosine ~0.9, different people ~0)."""
    rng = np.random.default_rng(seed)
    centres = unit(rng.standard_normal((people, DIM)))
    x = unit(np.repeat(centres, shots, 0) + 0.33 * unit(rng.standard_normal((people * shots, DIM))))
    return x, np.repeat(np.arange(people), shots)


def top1(sims, labels) -> float:
    s = np.array(sims, np.float64)
    np.fill_diagonal(s, -np.inf)
    return float((labels[s.argmax(1)] == labels).mean())


def features(stored) -> np.ndarray:
    """What an attacker can regress on: sealed bytes as +-1 bits, vectors as they are."""
    if isinstance(stored, list):
        bits = np.unpackbits(np.frombuffer(b"".join(stored), np.uint8).reshape(len(stored), -1), axis=1)
        return bits.astype(np.float64) * 2 - 1
    return np.asarray(stored, np.float64)


def ridge(x, y, lam=1e-3):
    xb = np.hstack([x, np.ones((len(x), 1))])
    return np.linalg.solve(xb.T @ xb + lam * np.eye(xb.shape[1]), xb.T @ y)


def recovered_by_attacker(t, pairs_plain, stolen, ctx_pairs, ctx_stolen) -> np.ndarray:
    """The best of orthogonal Procrustes and least squares, fitted on 512 known (plain, protected)
    pairs, applied to the stolen rows."""
    fp, fs = features(t.protect(pairs_plain, ctx_pairs)), features(stolen)
    out = []
    if fs.shape[1] == DIM:  # protected = plain @ R.T: R from the pairs
        u, _, vt = np.linalg.svd(fp.T @ pairs_plain)
        out.append(fs @ (u @ vt))
    w = ridge(fp, pairs_plain)
    out.append(np.hstack([fs, np.ones((len(fs), 1))]) @ w)
    return out


@pytest.fixture(scope="module")
def data():
    x, labels = clusters(1)
    pairs, _ = clusters(2, people=128, shots=4)  # 512 known pairs, all of other people
    return x, labels, pairs


def test_sealed_same_person_matches_under_one_key(data):
    x, labels, _ = data
    t = SealedTemplates.from_key(MasterKey.generate(), DIM)
    ctx = [f"m:{i}:template0".encode() for i in range(len(x))]
    stored = t.protect(x, ctx)
    sims = np.stack([t.scores(q, stored, ctx) for q in x])
    assert np.allclose(sims, x @ x.T, atol=1e-5)  # exact cosines: nothing lost
    assert top1(sims, labels) == top1(x @ x.T, labels) >= 0.99
    again = t.protect(x[:1], ctx[:1])[0]
    assert again != stored[0]  # random nonce: sealing the same vector twice gives unrelated bytes


def test_index_templates_open_what_they_sealed_and_bind_the_row():
    key = MasterKey.generate()
    keys = IndexTemplates(key, DIM)
    x = unit(np.random.default_rng(3).standard_normal((4, DIM)))
    ids = [f"m1:{i}:template0" for i in range(4)]
    sealed = keys.seal(x, ids)
    assert np.allclose(keys.open_rows(ids, sealed), x, atol=1e-6)
    with pytest.raises(TemplateOpenError, match="m1:1:template0"):  # a row moved onto another row id
        keys.open_rows(ids[1:2], sealed[:1])
    with pytest.raises(TemplateOpenError):  # another key
        IndexTemplates(MasterKey.generate(), DIM).open_rows(ids, sealed)
    tampered = bytearray(sealed[2])
    tampered[20] ^= 1
    with pytest.raises(TemplateOpenError):
        keys.open_rows(ids[2:3], [bytes(tampered)])
    # rows of an index written before (rotated with the key's old matrix) still read
    old = OrthogonalRotation.from_key(key, DIM).protect(x)
    assert np.allclose(keys.open_rows(ids, [None] * 4, old), x, atol=1e-5)
    assert "secret" not in repr(keys) and "IndexTemplates" in repr(keys)
    with pytest.raises(TypeError):
        __import__("pickle").dumps(keys)


def test_two_keys_do_not_link(data):
    x, labels, _ = data
    ctx = [f"m:{i}:template0".encode() for i in range(len(x))]
    a = features(SealedTemplates.from_key(MasterKey.generate(), DIM).protect(x, ctx))
    b = features(SealedTemplates.from_key(MasterKey.generate(), DIM).protect(x, ctx))
    chance = 1 / PEOPLE
    cross = top1(unit(b) @ unit(a).T, labels)
    same = top1(unit(a) @ unit(a).T, labels)  # within one key, without the key: no linkage either
    assert cross <= 3 * chance and same <= 3 * chance
    # the old rotation: two keys do not link directly, but one key links everyone's photos
    r = OrthogonalRotation.from_key(MasterKey.generate(), DIM).protect(x)
    assert top1(r @ r.T, labels) >= 0.99


def test_known_pair_attacker_with_512_pairs_learns_nothing(data):
    x, labels, pairs = data
    key = MasterKey.generate()
    chance = 1 / PEOPLE
    ctx = [f"m:{i}:template0".encode() for i in range(len(x))]
    pctx = [f"k:{i}:template0".encode() for i in range(len(pairs))]
    sealed = SealedTemplates.from_key(key, DIM)
    for rec in recovered_by_attacker(sealed, pairs, sealed.protect(x, ctx), pctx, ctx):
        cos = np.sum(unit(rec) * x, 1)
        assert abs(float(cos.mean())) < 0.1, cos.mean()
        assert top1(unit(rec) @ x.T, labels) <= 3 * chance  # re-identification against public photos
    # the same attacker against the old templates recovers them (the test can fail)
    rot = OrthogonalRotation.from_key(key, DIM)
    best = recovered_by_attacker(rot, pairs, rot.protect(x), pctx, ctx)[0]
    assert float(np.sum(unit(best) * x, 1).mean()) > 0.99
    assert top1(unit(best) @ x.T, labels) >= 0.99


def test_keyed_hashes_fall_to_the_same_attacker(data):
    """Why the index does not use BioHashing / index-of-max: least squares on 512 pairs re-identifies."""
    x, labels, pairs = data
    t = TRANSFORMS["biohash-512"].from_key(MasterKey.generate(), DIM)
    w = ridge(pairs, t.protect(pairs))
    pred = np.where(np.hstack([x, np.ones((len(x), 1))]) @ w >= 0, 1.0, -1.0)
    assert top1(t.protect(x) @ pred.T, labels) > 10 / PEOPLE


def test_derived_secrets_differ_by_key_and_purpose():
    key = MasterKey.generate()
    assert SealedTemplates.purpose() != "index/projection"
    x = unit(np.random.default_rng(5).standard_normal((3, DIM)))
    a, b = (OrthogonalRotation.from_key(k, DIM).protect(x) for k in (key, MasterKey.generate()))
    assert not np.allclose(a, b)
    with pytest.raises(ValueError):
        SealedTemplates(b"short", DIM)
