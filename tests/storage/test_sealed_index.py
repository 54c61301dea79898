"""The identity index with sealed templates, on a real LanceDB database in tmp_path: indexing seals,
search opens them in-process and scores exact cosines, an index written before (rotated vectors)
is read and then sealed, key rotation re-seals, and the stored table gives nothing away."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pyarrow as pa
import pytest

from faceveil.models.template_protection import OrthogonalRotation, TemplateOpenError
from faceveil.storage.control import ControlFileError, control_key
from faceveil.storage.identity_index import IdentityIndex, placeholder, row_id, templates_schema
from faceveil.storage.keys import MasterKey
from faceveil.storage.paths import Location
from faceveil.ops.reproject import reproject_index
from faceveil.ops.search import search_tracks
from faceveil.pipeline.sealed_index import index_keys
from faceveil.tasks.index_media import index_templates

DIM = 128


def unit(x):
    x = np.asarray(x, np.float64)
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def people(n=6, seed=0):
    rng = np.random.default_rng(seed)
    return unit(rng.standard_normal((n, DIM)))


def near(v, seed):
    return unit(v + 0.3 * unit(np.random.default_rng(seed).standard_normal(DIM)))


def result(media_id: str, vectors) -> SimpleNamespace:
    """What an anonymize run hands to indexing for one photo: one track per vector."""
    return SimpleNamespace(
        row={"media_id": media_id, "rel_path": f"cam/{media_id}.jpg"},
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
                "vault_key_ids": [f"k-{media_id}-{i}"],
                "quality": 0.9,
            }
            for i, v in enumerate(vectors)
        ],
    )


def old_rows(media_id, vectors, key) -> pa.Table:
    """Rows as indexes before sealed templates stored them: vectors rotated with the key's matrix (and
    no face-quality columns: those came later still)."""
    rot = OrthogonalRotation.from_key(key, DIM).protect(vectors)
    n = len(vectors)
    return pa.table(
        {
            "row_id": [row_id(media_id, i, "template") for i in range(n)],
            "media_id": [media_id] * n,
            "rel_path": [f"cam/{media_id}.jpg"] * n,
            "camera": ["cam"] * n,
            "track_id": np.arange(n, dtype=np.int64),
            "kind": ["template"] * n,
            "first_frame": np.zeros(n, np.int64),
            "last_frame": np.zeros(n, np.int64),
            "t_start_s": np.zeros(n),
            "t_end_s": np.zeros(n),
            "boxes_json": ["[]"] * n,
            "vault_key_ids": [[f"k-{media_id}-{i}"] for i in range(n)],
            "embedder": ["dlib-resnet"] * n,
            "quality": np.full(n, 0.9, np.float32),
            "vector": pa.FixedSizeListArray.from_arrays(pa.array(rot.reshape(-1)), DIM),
        },
        schema=templates_schema(DIM, quality=False),
    )


def test_sealed_index_search_and_rotation(tmp_path):
    loc, key, new = Location(str(tmp_path)), MasterKey.generate(), MasterKey.generate()
    p = people()
    assert (
        index_templates(
            loc,
            [result("m1", p[:3]), result("m2", p[3:])],
            index_keys(key, DIM),
            "dlib-resnet",
            key.fingerprint,
            "mirror-mean",
            control_key(key),
        )
        == 6
    )
    index = IdentityIndex(loc, dim=DIM)
    assert index.sealed and index.meta()["template_transform"] == "aesgcm-v1" and index.meta()["threshold"] == 0.92
    stored = index.rows()
    assert np.allclose(np.stack(stored["vector"].to_numpy(zero_copy_only=False)), placeholder(DIM))
    assert len(set(stored["sealed"].to_pylist())) == 6
    for i in range(6):
        matches, cut = search_tracks(loc, key, near(p[i], i))
        assert matches and (matches[0].media_id, matches[0].track_id) == (("m1", i) if i < 3 else ("m2", i - 3))
        assert abs(matches[0].score - float(near(p[i], i) @ p[i])) < 1e-5 and matches[0].score >= cut
    assert search_tracks(loc, key, people(1, seed=9)[0])[0] == []  # nobody of the index: no guess
    with pytest.raises(ControlFileError):  # not this index's key: its meta.json (threshold) is refused
        search_tracks(loc, new, p[0])
    with pytest.raises(ValueError, match="NaN"):  # the plain vectors are checked before they are sealed
        index_templates(
            loc,
            [result("m3", np.full((1, DIM), np.nan, np.float32))],
            index_keys(key, DIM),
            "dlib-resnet",
            key.fingerprint,
            "mirror-mean",
            control_key(key),
        )
    from faceveil.tasks.validate import index_embeddings

    emb = index_embeddings(loc, ["m1", "m2"], DIM)  # what the run's data contract checks
    assert len(emb) == 6 and (emb.dim == DIM).all() and np.allclose(emb.norm, 1)
    # re-indexing a media replaces its rows, never duplicates
    index_templates(
        loc,
        [result("m1", p[:3])],
        index_keys(key, DIM),
        "dlib-resnet",
        key.fingerprint,
        "mirror-mean",
        control_key(key),
    )
    assert index.count() == 6
    assert reproject_index(loc, key, new, DIM) == 6
    assert reproject_index(loc, key, new, DIM) == 0  # done already (an interrupted rotation resumes)
    assert search_tracks(loc, new, near(p[4], 4))[0][0].media_id == "m2"
    with pytest.raises(ControlFileError):  # the old key: refused (meta.json is signed with the new one)
        search_tracks(loc, key, p[0])
    assert index.meta()["key_fingerprint"] == new.fingerprint
    # a row edited or moved onto another row id does not open: it matches nothing, the rest still does
    t = index.media_rows("m2")
    blobs = t["sealed"].to_pylist()
    blobs[0], blobs[1] = blobs[1], blobs[0]  # swap two rows' templates
    index.replace_media("m2", t.set_column(t.schema.get_field_index("sealed"), "sealed", pa.array(blobs, pa.binary())))
    assert all(m.media_id != "m2" or m.track_id == 2 for m in search_tracks(loc, new, near(p[3], 3))[0])
    assert search_tracks(loc, new, near(p[3], 3))[0] == []
    assert search_tracks(loc, new, near(p[5], 5))[0][0].track_id == 2
    with pytest.raises(TemplateOpenError):
        reproject_index(loc, new, MasterKey.generate(), DIM)  # rotation never drops a row silently


def test_index_written_before_is_read_then_sealed(tmp_path):
    loc, key, new = Location(str(tmp_path)), MasterKey.generate(), MasterKey.generate()
    p = people()
    old = IdentityIndex(loc, dim=DIM)
    old.replace_media("m1", old_rows("m1", p[:3], key))
    old.control = control_key(key)  # as signed by the first key holder who opens it (storage/vault_control)
    old.write_meta({"threshold": 0.92, "dim": DIM})
    assert not old.sealed
    assert search_tracks(loc, key, near(p[1], 1))[0][0].track_id == 1  # rotated rows still searchable
    # the next indexing run seals them with the same key
    index_templates(
        loc,
        [result("m2", p[3:])],
        index_keys(key, DIM),
        "dlib-resnet",
        key.fingerprint,
        "mirror-mean",
        control_key(key),
    )
    index = IdentityIndex(loc, dim=DIM)
    t = index.rows()
    assert index.sealed and t["sealed"].null_count == 0 and t.num_rows == 6
    assert np.allclose(np.stack(t["vector"].to_numpy(zero_copy_only=False)), placeholder(DIM))
    for i in range(6):
        m = search_tracks(loc, key, near(p[i], i))[0][0]
        assert (m.media_id, m.track_id) == (("m1", i) if i < 3 else ("m2", i - 3))
    assert reproject_index(loc, key, new, DIM) == 6
    assert search_tracks(loc, new, near(p[2], 2))[0][0].media_id == "m1"


def test_rotate_key_seals_an_index_written_before(tmp_path):
    loc, key, new = Location(str(tmp_path)), MasterKey.generate(), MasterKey.generate()
    p = people()
    old = IdentityIndex(loc, dim=DIM)
    old.replace_media("m1", old_rows("m1", p, key))
    assert reproject_index(loc, key, new, DIM) == 6
    index = IdentityIndex(loc, dim=DIM)
    assert index.sealed and index.meta()["template_transform"] == "aesgcm-v1"
    assert [search_tracks(loc, new, near(v, i))[0][0].track_id for i, v in enumerate(p)] == list(range(6))


def test_index_keeps_the_template_view_it_was_created_with(tmp_path):
    from faceveil.pipeline.sealed_index import index_view

    loc, key = Location(str(tmp_path)), MasterKey.generate()
    assert index_view(loc) == "mirror-mean"  # a new archive gets the default
    index_templates(
        loc,
        [result("m1", people()[:1])],
        index_keys(key, DIM),
        "dlib-resnet",
        key.fingerprint,
        "plain",
        control_key(key),
    )
    assert index_view(loc) == "plain"  # kept: later runs and probes embed the way its rows were
    index_templates(
        loc, [result("m2", people()[1:2])], index_keys(key, DIM), "dlib-resnet", key.fingerprint, "mirror-mean"
    )
    assert index_view(loc) == "plain"
    IdentityIndex(loc, dim=DIM).write_meta({"template_view": None}, merge=True)
    meta = IdentityIndex(loc, dim=DIM).meta()
    meta.pop("template_view")
    IdentityIndex(loc, dim=DIM).write_meta(meta, merge=False)
    assert index_view(loc) == "plain"  # an index from before views were recorded
