"""The identity index on a real LanceDB database in tmp_path (no mocks)."""

from __future__ import annotations

import time

import numpy as np
import pyarrow as pa
import pytest

from faceveil.storage.identity_index import IdentityIndex, row_id, templates_schema
from faceveil.storage.paths import Location

DIM = 16


def unit(x) -> np.ndarray:
    x = np.asarray(x, np.float32)
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def rows(media_id: str, vectors, kinds=None, camera: str = "cam1", dim: int = DIM) -> pa.Table:
    """Template rows for one media: track i gets vectors[i]."""
    vectors = np.asarray(vectors, np.float32).reshape(-1, dim)
    n = len(vectors)
    kinds = kinds or ["template"] * n
    counts: dict = {}
    ids = []
    for i, k in enumerate(kinds):
        ids.append(row_id(media_id, i, k, counts.get((i, k), 0)))
        counts[(i, k)] = counts.get((i, k), 0) + 1
    return pa.table(
        {
            "row_id": ids,
            "media_id": [media_id] * n,
            "rel_path": [f"{camera}/{media_id}.mp4"] * n,
            "camera": [camera] * n,
            "track_id": np.arange(n, dtype=np.int64),
            "kind": kinds,
            "first_frame": np.arange(n, dtype=np.int64) * 10,
            "last_frame": np.arange(n, dtype=np.int64) * 10 + 9,
            "t_start_s": np.arange(n) * 0.4,
            "t_end_s": np.arange(n) * 0.4 + 0.36,
            "boxes_json": ["[[0, 10, 10, 50, 60]]"] * n,
            "vault_key_ids": [[f"key-{media_id}-{i}"] for i in range(n)],
            "embedder": ["test"] * n,
            "quality": np.full(n, 0.8, np.float32),
            "face_px": np.full(n, 50, np.float32),
            "sharpness": np.full(n, 0.8, np.float32),
            "frontality": np.full(n, 0.9, np.float32),
            "vector": pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), dim),
        },
        schema=templates_schema(dim),
    )


@pytest.fixture
def index(tmp_path) -> IdentityIndex:
    return IdentityIndex(Location(str(tmp_path)), dim=DIM)


def test_empty_index_answers_nothing(index, tmp_path):
    q = unit(np.ones(DIM))
    assert index.search(q) == [] and index.search_many(np.stack([q, q])) == [[], []]
    assert index.count() == 0 and index.media_ids() == [] and index.meta() == {}
    index.delete_media("nothing")  # no table yet: a no-op
    assert index.build_ann_index(force=True) is False
    # a table that exists but is empty (its only media deleted)
    index.replace_media("m1", rows("m1", unit(np.eye(DIM)[:2])))
    index.delete_media("m1")
    assert index.count() == 0 and index.search(q) == []


def test_replace_media_is_idempotent(index, tmp_path):
    rng = np.random.default_rng(0)
    a, b = unit(rng.standard_normal((5, DIM))), unit(rng.standard_normal((3, DIM)))
    for _ in range(2):
        assert index.replace_media("m1", rows("m1", a)) == 5
        index.replace_media("m2", rows("m2", b))
    assert index.count() == 8 and index.media_ids() == ["m1", "m2"]
    # a fresh handle (another process) sees the same, and a re-run with fewer tracks shrinks the media
    other = IdentityIndex(Location(str(tmp_path)), dim=DIM)
    other.replace_media("m1", rows("m1", a[:2]))
    assert index.count() == 5 and other.count() == 5
    hits = index.search(a[4], k=20)
    assert sorted(h["row_id"] for h in hits if h["media_id"] == "m1") == ["m1:0:template0", "m1:1:template0"]
    # a media that now has no faces has no rows
    index.replace_media("m2", rows("m2", np.zeros((0, DIM))))
    assert index.media_ids() == ["m1"]


def test_search_returns_planted_vector_first(index):
    rng = np.random.default_rng(1)
    base = unit(rng.standard_normal((200, DIM)))
    for m in range(4):
        index.replace_media(f"m{m}", rows(f"m{m}", base[m * 50 : (m + 1) * 50], camera=f"cam{m % 2}"))
    target = 137
    probe = unit(base[target] + 0.01 * rng.standard_normal(DIM))
    hits = index.search(probe, k=10)
    assert len(hits) == 10
    assert hits[0]["row_id"] == f"m{target // 50}:{target % 50}:template0"
    assert hits[0]["score"] == pytest.approx(float(base[target] @ probe), abs=1e-5) and hits[0]["score"] > 0.99
    scores = [h["score"] for h in hits]
    assert scores == sorted(scores, reverse=True)
    expected = np.sort(base @ probe)[::-1][:10]
    np.testing.assert_allclose(scores, expected, atol=1e-5)
    top = hits[0]
    assert "vector" not in top and "_distance" not in top
    assert top["camera"] == f"cam{(target // 50) % 2}" and top["vault_key_ids"] == [f"key-m2-{target % 50}"]
    assert index.search(probe, k=10, min_score=0.99)[0]["row_id"] == top["row_id"]
    assert len(index.search(probe, k=10, min_score=0.99)) == 1
    # batch search agrees with one-by-one search
    many = index.search_many(base[[3, 77, 190]], k=5)
    for got, i in zip(many, [3, 77, 190]):
        assert [h["row_id"] for h in got] == [h["row_id"] for h in index.search(base[i], k=5)]
        assert got[0]["score"] == pytest.approx(1.0, abs=1e-5)


def test_kinds_filter(index):
    v = unit(np.eye(DIM)[:4] + 0.1)
    index.replace_media("m1", rows("m1", v, kinds=["template", "exemplar", "exemplar", "template"]))
    assert {h["kind"] for h in index.search(v[1], k=10, kinds=["template"])} == {"template"}
    ex = index.search(v[1], k=10, kinds=("exemplar",))
    assert [h["track_id"] for h in ex][0] == 1 and {h["kind"] for h in ex} == {"exemplar"} and len(ex) == 2
    assert len(index.search(v[1], k=10)) == 4
    assert index.search(v[1], kinds=[]) == []
    with pytest.raises(ValueError, match="unknown kind"):
        index.search(v[1], kinds=["template'; --"])
    with pytest.raises(ValueError, match="unknown kind"):
        index.replace_media("m2", rows("m2", v[:1], kinds=["face"]))


def test_delete_media(index):
    v = unit(np.eye(DIM)[:6] + 0.05)
    index.replace_media("m1", rows("m1", v[:3]))
    index.replace_media("o'brien", rows("o'brien", v[3:]))  # quotes in ids are escaped, not injected
    index.delete_media("m1")
    assert index.media_ids() == ["o'brien"] and index.count() == 3
    assert all(h["media_id"] == "o'brien" for h in index.search(v[0], k=10))
    index.delete_media("o'brien")
    assert index.count() == 0


def test_meta_round_trip(index, tmp_path):
    index.write_meta({"threshold": 0.62, "calibration": {"far": 1e-4, "n_pairs": 1000}})
    index.write_meta({"embedder": "dlib-resnet"})  # merged into the stored keys
    again = IdentityIndex(Location(str(tmp_path)), dim=DIM)
    assert again.meta() == {"threshold": 0.62, "calibration": {"far": 1e-4, "n_pairs": 1000}, "embedder": "dlib-resnet"}
    assert (tmp_path / "index" / "meta.json").is_file()
    index.write_meta({"threshold": 0.7}, merge=False)
    assert again.meta() == {"threshold": 0.7}


def test_bad_vectors_refused(index):
    good = unit(np.ones(DIM))
    index.replace_media("m1", rows("m1", good[None]))
    cases = {
        "shape": np.ones(DIM + 1, np.float32) / np.sqrt(DIM + 1),
        "NaN": np.where(np.arange(DIM) == 3, np.nan, good).astype(np.float32),
        "unit-norm": good * 2,
        "dtype": np.ones(DIM, np.int64),
    }
    for problem, v in cases.items():
        with pytest.raises(ValueError, match=problem):
            index.search(v)
    with pytest.raises(ValueError, match="shape"):
        index.search(np.stack([good, good]))  # search takes one vector; search_many takes many
    with pytest.raises(ValueError, match="inf"):
        index.search_many(np.stack([good, np.full(DIM, np.inf, np.float32)]))
    with pytest.raises(ValueError, match="unit-norm"):
        index.replace_media("m2", rows("m2", np.stack([good, good * 0.5])))
    with pytest.raises(ValueError, match="other media"):
        index.replace_media("m3", rows("m2", good[None]))
    with pytest.raises(ValueError, match="dim 8"):
        index.replace_media("m4", rows("m4", np.ones((1, 8), np.float32) / np.sqrt(8), dim=8))
    with pytest.raises(ValueError, match="dim"):
        IdentityIndex(index.loc, dim=32).search(unit(np.ones(32)))  # stored table is 16-d
    assert index.count() == 1 and index.media_ids() == ["m1"]


@pytest.mark.slow  # builds an IVF_PQ index on 60000 vectors (about a minute)
def test_ann_index_keeps_recall(tmp_path, figures):
    """~60k random unit vectors (the hardest case for an ANN index: no structure) in 128-d;
    the IVF_PQ + refine path must find >= 90% of the exact top 10."""
    dim, n, per_media = 128, 60_000, 10_000
    rng = np.random.default_rng(7)
    data = unit(rng.standard_normal((n, dim), dtype=np.float32))
    ix = IdentityIndex(Location(str(tmp_path)), dim=dim, ann_min_rows=50_000)
    for m in range(n // per_media):
        ix.replace_media(f"m{m}", rows(f"m{m}", data[m * per_media : (m + 1) * per_media], dim=dim))
    assert ix.count() == n

    queries = unit(data[rng.choice(n, 50, replace=False)] + 0.05 * rng.standard_normal((50, dim), dtype=np.float32))
    sims = queries @ data.T
    truth = [set(np.argsort(-s)[:10]) for s in sims]

    def ids(hits):
        return {int(h["media_id"][1:]) * per_media + h["track_id"] for h in hits}

    exact = [ix.search(q, k=10) for q in queries[:5]]  # no index yet: exact
    assert all(ids(e) == t for e, t in zip(exact, truth))

    t0 = time.perf_counter()
    assert ix.build_ann_index() is True
    build_s = time.perf_counter() - t0
    table = ix._open()
    assert [i.index_type for i in table.list_indices()] == ["IvfPq"]
    assert ix._ann(table) is not None  # the search goes through the index

    t0 = time.perf_counter()
    results = ix.search_many(queries, k=10)
    search_ms = (time.perf_counter() - t0) * 1e3 / len(queries)
    recall = float(np.mean([len(ids(r) & t) / 10 for r, t in zip(results, truth)]))
    figures.append(
        f"identity index: IVF_PQ on {n} random 128-d vectors: built in {build_s:.1f} s, "
        f"recall@10 {recall:.3f}, {search_ms:.1f} ms/query (batch of 50)"
    )
    assert recall >= 0.9, recall
    for r, s in zip(results[:5], sims[:5]):  # refined scores are exact cosines
        np.testing.assert_allclose([h["score"] for h in r], np.sort(s)[::-1][: len(r)], atol=1e-4)

    # below ann_min_rows the same table is searched exactly even though an index exists
    small = IdentityIndex(Location(str(tmp_path)), dim=dim, ann_min_rows=10 * n)
    assert small._ann(small._open()) is None
    assert ids(small.search(queries[0], k=10)) == truth[0]
    # new rows after the build are found at once (unindexed rows are scanned), and optimize folds them in
    planted = unit(rng.standard_normal(dim, dtype=np.float32))
    ix.replace_media("late", rows("late", planted[None], dim=dim))
    assert ix.search(planted, k=1)[0]["media_id"] == "late"
    assert ix.build_ann_index() is True and ix.search(planted, k=1)[0]["media_id"] == "late"
