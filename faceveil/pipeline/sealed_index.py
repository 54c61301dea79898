"""Rows of the identity index as stored: templates sealed with the archive's key (bound to each row
id) and opened again in memory only; the index's template view; old rotated rows sealed."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from faceveil.models.template_protection import IndexTemplates
from faceveil.storage.keys import MasterKey
from faceveil.storage.paths import Location


def index_view(dest: Location, control: bytes | None = None) -> str:
    """How the archive's index embeds faces (models/track_templates): the one it was created with;
    an index from before views were recorded is "plain"; a new one gets the default. `control`:
    meta.json's MAC is checked with it (storage/control.py)."""
    from faceveil.models.track_templates import DEFAULT_VIEW
    from faceveil.storage.identity_index import IdentityIndex

    meta = IdentityIndex(dest, control=control).meta() or {}
    return meta.get("template_view", "plain" if meta else DEFAULT_VIEW)


def index_keys(master: MasterKey, dim: int) -> IndexTemplates:
    """The archive's template protection under `master` (sealed templates; see models/template_protection)."""
    return IndexTemplates(master, dim)


def with_sealed(t: pa.Table, keys: IndexTemplates, plain: np.ndarray, dim: int) -> pa.Table:
    """Rows `t` holding the plain vectors `plain` sealed (bound to each row id), `vector` the placeholder."""
    from faceveil.storage.identity_index import check_vectors, placeholder, templates_schema

    ids = t.column("row_id").to_pylist()
    sealed = pa.array(keys.seal(check_vectors(plain, dim), ids), pa.binary())  # finite unit vectors only
    hold = pa.FixedSizeListArray.from_arrays(pa.array(np.tile(placeholder(dim), len(ids)), pa.float32()), dim)
    t = t.set_column(t.schema.get_field_index("vector"), "vector", hold)
    t = (
        t.set_column(t.schema.get_field_index("sealed"), "sealed", sealed)
        if "sealed" in t.column_names
        else t.append_column("sealed", sealed)
    )
    return t.select(templates_schema(dim, sealed=True).names).cast(templates_schema(dim, sealed=True))


def plain_vectors(t: pa.Table, keys: IndexTemplates, dim: int, skip_bad: bool = False) -> np.ndarray:
    """The plain vectors of stored rows (sealed opened, old rotated ones rotated back), in memory only;
    with `skip_bad`, rows that do not open are NaN."""
    sealed = t.column("sealed").to_pylist() if "sealed" in t.column_names else [None] * t.num_rows
    vecs = np.stack(t.column("vector").to_numpy(zero_copy_only=False)).astype(np.float32) if t.num_rows else None
    return keys.open_rows(t.column("row_id").to_pylist(), sealed, vecs, skip_bad=skip_bad)


def seal_old_rows(index, keys: IndexTemplates) -> int:
    """Rows an index written before sealed templates holds as rotated vectors, sealed under the same
    key (per media, each media in one commit: an interrupted run resumes). Returns rows sealed."""
    index.add_sealed_column()
    n = 0
    for mid in index.media_ids(unsealed=True):
        t = index.media_rows(mid)
        if not t.num_rows or not t.column("sealed").null_count:
            continue
        index.replace_media(mid, with_sealed(t, keys, plain_vectors(t, keys, index.dim), index.dim))
        n += t.num_rows
    return n
