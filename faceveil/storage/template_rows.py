"""The rows of the identity index (storage/identity_index.py): their schema, ids and vector checks,
and the face-quality columns that say how well each stored face can be told apart.

Face quality (`QUALITY_COLUMNS`: face size in pixels, sharpness, frontality; measured when templates
are made, models/track_templates.face_quality) is stored with every template and exemplar; search
ranks by it (ops/search.py). Indexes written before it was stored have no such columns: their rows
read as null there, which means "quality unknown" (never an error), and the columns are added (null
in the old rows) the first time such an index is written to again.
"""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa

from faceveil.models.track_templates import QUALITY_FIELDS

KINDS = ("template", "exemplar")
NORM_TOLERANCE = 1e-3
QUALITY_COLUMNS = QUALITY_FIELDS
"""face_px (geometric mean of the box's width and height), sharpness and frontality (both 0..1)."""


def quality_fields() -> list[pa.Field]:
    """The face-quality columns (nullable float32: null is "not measured", as in old indexes)."""
    return [pa.field(name, pa.float32()) for name in QUALITY_COLUMNS]


def templates_schema(dim: int, sealed: bool = False, quality: bool = True) -> pa.Schema:
    """One row per track template or exemplar; `row_id` is '<media_id>:<track_id>:<kind><n>'.
    `sealed`: the table also has the `sealed` column (binary: the template sealed with the index key,
    see faceveil.models.template_protection); such rows hold `placeholder(dim)` in `vector`. `quality`: with
    the face-quality columns (not quality=False: the schema of indexes written before them)."""
    if not isinstance(dim, int) or dim < 1:
        raise ValueError(f"dim must be a positive integer, got {dim!r}")
    return pa.schema(
        [
            ("row_id", pa.string()),
            ("media_id", pa.string()),
            ("rel_path", pa.string()),
            ("camera", pa.string()),
            ("track_id", pa.int64()),
            ("kind", pa.string()),
            ("first_frame", pa.int64()),
            ("last_frame", pa.int64()),
            ("t_start_s", pa.float64()),
            ("t_end_s", pa.float64()),
            ("boxes_json", pa.string()),
            ("vault_key_ids", pa.list_(pa.string())),
            ("embedder", pa.string()),
            ("quality", pa.float32()),
            *(quality_fields() if quality else []),
            ("vector", pa.list_(pa.float32(), dim)),
        ]
        + ([("sealed", pa.binary())] if sealed else [])
    )


TEMPLATES = templates_schema(128)
"""The schema at the default dimension (128, the dlib descriptor)."""


def with_columns(t: pa.Table, schema: pa.Schema, names) -> pa.Table:
    """`t` with each of `names` it lacks added as an all-null column of its type in `schema`."""
    for name in names:
        if name not in t.column_names:
            f = schema.field(name)
            t = t.append_column(f, pa.nulls(t.num_rows, f.type))
    return t


def placeholder(dim: int) -> np.ndarray:
    """The constant unit vector a sealed row holds in `vector` (the same for every row: it carries
    nothing; the template itself is in `sealed`)."""
    return np.full(dim, 1 / math.sqrt(dim), np.float32)


def row_id(media_id: str, track_id: int, kind: str, n: int = 0) -> str:
    return f"{media_id}:{int(track_id)}:{kind}{int(n)}"


def check_vectors(vectors, dim: int) -> np.ndarray:
    """(n, dim) float32 finite unit-norm vectors, or ValueError naming the problem."""
    v = np.asarray(vectors)
    if v.ndim != 2 or v.shape[1] != dim:
        raise ValueError(f"vectors have shape {v.shape}, expected (n, {dim})")
    if not np.issubdtype(v.dtype, np.floating):
        raise ValueError(f"vectors have dtype {v.dtype}, expected float32")
    v = v.astype(np.float32, copy=False)
    bad = ~np.isfinite(v).all(axis=1)
    if bad.any():
        raise ValueError(f"{int(bad.sum())} vector(s) contain NaN or inf (first at row {int(np.argmax(bad))})")
    norms = np.linalg.norm(v.astype(np.float64), axis=1)
    off = np.abs(norms - 1.0) > NORM_TOLERANCE
    if off.any():
        i = int(np.argmax(off))
        raise ValueError(
            f"{int(off.sum())} vector(s) are not unit-norm (row {i} has norm {norms[i]:.4g}); L2-normalise them first"
        )
    return v
