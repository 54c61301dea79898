"""An identity index written before face quality was stored (no quality columns) on a real LanceDB
database: it still searches (quality unknown: ranked by cosine, said in the log, never an error),
and the next indexing run adds the columns, null in the old rows."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import numpy as np
import pyarrow as pa

from faceveil.ops.search import search_tracks
from faceveil.pipeline.sealed_index import index_keys, with_sealed
from faceveil.storage.control import control_key
from faceveil.storage.identity_index import QUALITY_COLUMNS, IdentityIndex, row_id, templates_schema
from faceveil.storage.keys import MasterKey
from faceveil.storage.paths import Location
from faceveil.storage.template_rows import with_columns
from faceveil.tasks.index_media import index_templates

DIM = 128


def unit(x):
    x = np.asarray(x, np.float64)
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def old_index(loc: Location, key: MasterKey, vectors) -> None:
    """A sealed index as written before face quality: its table has no quality columns."""
    import lancedb

    n = len(vectors)
    plain = pa.table(
        {
            "row_id": [row_id("old", i, "template") for i in range(n)],
            "media_id": ["old"] * n,
            "rel_path": ["cam/old.jpg"] * n,
            "camera": ["cam"] * n,
            "track_id": np.arange(n, dtype=np.int64),
            "kind": ["template"] * n,
            "first_frame": np.zeros(n, np.int64),
            "last_frame": np.zeros(n, np.int64),
            "t_start_s": np.zeros(n),
            "t_end_s": np.zeros(n),
            "boxes_json": ["[]"] * n,
            "vault_key_ids": [[f"k-old-{i}"] for i in range(n)],
            "embedder": ["dlib-resnet"] * n,
            "quality": np.full(n, 0.9, np.float32),
            "vector": pa.FixedSizeListArray.from_arrays(pa.array(np.asarray(vectors, np.float32).reshape(-1)), DIM),
        },
        schema=templates_schema(DIM, quality=False),
    )
    plain = with_columns(plain, templates_schema(DIM), QUALITY_COLUMNS)  # what with_sealed reads
    sealed = with_sealed(plain, index_keys(key, DIM), vectors, DIM)
    sealed = sealed.drop_columns(list(QUALITY_COLUMNS))
    assert sealed.schema.equals(templates_schema(DIM, sealed=True, quality=False))
    lancedb.connect(loc.path("index")).create_table("templates", data=sealed)
    IdentityIndex(loc, dim=DIM, control=control_key(key)).write_meta({"threshold": 0.9, "dim": DIM})


def test_old_schema_index_still_searches_then_gains_quality_columns(tmp_path, caplog):
    rng = np.random.default_rng(0)
    p = unit(rng.standard_normal((4, DIM)))
    loc, key = Location(str(tmp_path)), MasterKey.generate()
    old_index(loc, key, p[:2])
    index = IdentityIndex(loc, dim=DIM)
    assert index.sealed and not index.has_quality
    t = index.rows()  # quality columns read as null: unknown
    assert all(t[c].null_count == t.num_rows == 2 for c in QUALITY_COLUMNS)
    with caplog.at_level(logging.WARNING, logger="faceveil.ops.search"):
        matches, cut = search_tracks(loc, key, p[1])
    assert cut == 0.9 and [(m.media_id, m.track_id) for m in matches] == [("old", 1)]
    assert matches[0].quality is None and matches[0].rank == matches[0].score  # by cosine alone
    assert "no face quality" in caplog.text
    assert search_tracks(loc, key, unit(rng.standard_normal(DIM)))[0] == []  # still no best guess

    # the next run indexes new media: the columns are added, old rows stay unknown, new rows carry quality
    new = SimpleNamespace(
        row={"media_id": "new", "rel_path": "cam/new.jpg"},
        templates=[
            {
                "track_id": i,
                "kind": "template",
                "vector": v,
                "first_frame": 0,
                "last_frame": 0,
                "t_start_s": 0.0,
                "t_end_s": 0.0,
                "boxes_json": "[]",
                "vault_key_ids": [f"k-new-{i}"],
                "quality": 0.9,
                "face_px": 120.0,
                "sharpness": 0.8,
                "frontality": 0.9,
            }
            for i, v in enumerate(p[2:])
        ],
    )
    index_templates(loc, [new], index_keys(key, DIM), "dlib-resnet", key.fingerprint, "mirror-mean", control_key(key))
    index = IdentityIndex(loc, dim=DIM)
    assert index.has_quality and index.count() == 4
    t = index.rows().sort_by("row_id")
    assert t["media_id"].to_pylist() == ["new", "new", "old", "old"]
    assert t["face_px"].to_pylist()[:2] == [120.0, 120.0] and t["face_px"].to_pylist()[2:] == [None, None]
    m = search_tracks(loc, key, p[3])[0][0]
    assert (m.media_id, m.track_id) == ("new", 1) and m.quality > 0.5
    assert search_tracks(loc, key, p[0])[0][0].media_id == "old"
