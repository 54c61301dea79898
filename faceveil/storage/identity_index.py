"""The identity index: one row per track template (and a few exemplars per track) in LanceDB, with
where and when the track was seen, searchable by cosine similarity.

Layout: the state root's index/ is the LanceDB database (table `templates`), and
index/meta.json a small JSON beside it (calibrated threshold, ANN parameters).
Vectors are unit-norm, so cosine similarity is what is searched and returned as `score`. An
archive's index holds its templates sealed (the `sealed` column, see faceveil.models.template_protection and
pipeline/sealed_index.py): such a table's `vector` column is a constant placeholder, its rows are scanned and
opened by the searching process, and no ANN index is built for it. `search` / the ANN index serve
tables of plain (or, in indexes written before sealing, rotated) vectors. Rows carry their face's
quality (storage/template_rows.py); a table written before that has no quality columns: its rows read
as quality unknown (null), and the columns are added when the table is next written to.

Search is exact (a brute-force scan) below `ann_min_rows`; above it, once `build_ann_index()` has
run, an IVF_PQ index answers (storage/ann_index.py says which parameters, and why IVF_PQ).
LanceDB starts native threads: never fork a process after using it (spawn workers instead).
Longer than 300 lines: one class around one LanceDB table (rows, ANN index, meta.json), read top to bottom.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from faceveil.storage.ann_index import ANN_TYPES, ann_config, ann_params  # noqa: F401  (ANN_TYPES re-exported)
from faceveil.storage.control import signed, verified
from faceveil.storage.lance_options import lance_storage_options, sql_quote  # noqa: F401  (re-exported)
from faceveil.storage.paths import Location
from faceveil.storage.template_rows import (
    KINDS,
    NORM_TOLERANCE,  # noqa: F401
    QUALITY_COLUMNS,
    TEMPLATES,  # noqa: F401
    check_vectors,
    placeholder,  # noqa: F401
    quality_fields,
    row_id,  # noqa: F401
    templates_schema,
    with_columns,
)

INDEX_DIR = "index"  # in the archive's state root
META_FILE = f"{INDEX_DIR}/meta.json"
META_LABEL = "index-meta"  # meta.json's control-file label (storage/control.py)


class IdentityIndex:
    """The identity index of one archive Location (see the module docstring).

    `ann_min_rows`: below it search is exact; at or above it `build_ann_index()` builds the ANN
    index (`index_type` IVF_PQ, the default, or IVF_HNSW_SQ) and search uses it. `nprobes`, `ef`
    (HNSW) and `refine_factor` override the search-time ANN parameters. `control`: the archive's
    control-file key; meta.json (its match threshold) is then signed when written and refused when
    read unless its MAC holds (storage/control.py)."""

    def __init__(
        self,
        loc: Location,
        dim: int = 128,
        table: str = "templates",
        *,
        ann_min_rows: int = 50_000,
        index_type: str = "IVF_PQ",
        nprobes: int | None = None,
        ef: int | None = None,
        refine_factor: int = 10,
        control: bytes | None = None,
    ):
        if index_type not in ANN_TYPES:
            raise ValueError(f"index_type {index_type!r}: expected one of {ANN_TYPES}")
        self.loc, self.dim, self.table_name, self.control = loc, dim, table, control
        self.schema = templates_schema(dim)
        self.ann_min_rows, self.index_type = ann_min_rows, index_type
        self.nprobes, self.ef, self.refine_factor = nprobes, ef, refine_factor
        self.uri = loc.path(INDEX_DIR) if loc.is_local else f"s3://{loc.root}/{INDEX_DIR}"
        self.storage_options = lance_storage_options(loc)
        self._db = None
        self._table = None
        self._stored: set[str] = set()  # the table's own columns (an old table lacks the quality ones)
        self._ann_cache: tuple | None = None  # (table version, ANN parameters or None)

    # -- connection ------------------------------------------------------------------------------
    def _connect(self):
        if self._db is None:
            import lancedb  # ~2.5 s: imported only when the index is used

            if self.loc.is_local:
                os.makedirs(self.uri, exist_ok=True)
            self._db = lancedb.connect(self.uri, storage_options=self.storage_options or None)
        return self._db

    def _open(self, create: bool = False):
        """The table (checked out at its latest version), None when missing and not `create`."""
        if self._table is not None:
            self._table.checkout_latest()
            self._stored = set(self._table.schema.names)
            return self._table
        db = self._connect()
        try:
            self._table = db.open_table(self.table_name)
        except ValueError as e:
            if "not found" not in str(e):
                raise
            if not create:
                return None
            self._table = db.create_table(self.table_name, schema=self.schema, exist_ok=True)
        got = self._table.schema.field("vector").type
        if got != self.schema.field("vector").type:
            raise ValueError(
                f"{self.uri}/{self.table_name}: stored vectors are {got}, this index expects dim {self.dim}"
            )
        if "sealed" in self._table.schema.names and "sealed" not in self.schema.names:
            self.schema = templates_schema(self.dim, sealed=True)
        self._stored = set(self._table.schema.names)
        return self._table

    @property
    def sealed(self) -> bool:
        """Whether the table has the `sealed` column (templates sealed with the key)."""
        self._open()
        return "sealed" in self.schema.names

    def add_sealed_column(self) -> None:
        """Creates the table with, or adds to it, the `sealed` column (null in rows written before)."""
        table = self._open()
        if table is None:
            self.schema = templates_schema(self.dim, sealed=True)
            self._open(create=True)
        elif "sealed" not in table.schema.names:
            table.add_columns(pa.field("sealed", pa.binary()))
            self.schema = templates_schema(self.dim, sealed=True)

    @property
    def has_quality(self) -> bool:
        """Whether the table has the face-quality columns (False for a table written before them;
        a new or missing table gets them). Single rows may still hold null: quality unknown."""
        return self._open() is None or all(c in self._stored for c in QUALITY_COLUMNS)

    def _add_quality_columns(self, table) -> None:
        """Adds the face-quality columns a table written before them lacks (null in its old rows)."""
        absent = [f for f in quality_fields() if f.name not in self._stored]
        if absent:
            table.add_columns(absent)
            self._stored |= {f.name for f in absent}

    def _read(self, query, cols: list[str]) -> pa.Table:
        """`query`'s result with `cols`; a column the table lacks (the quality ones of an old table)
        comes back all null."""
        t = query.select([c for c in cols if c in self._stored]).to_arrow()
        return with_columns(t, self.schema, cols).select(cols)

    # -- writing ---------------------------------------------------------------------------------
    def _conform(self, media_id: str, rows: pa.Table | list[dict]) -> pa.Table:
        self._open()  # an existing table with sealed templates: its schema
        t = rows if isinstance(rows, pa.Table) else pa.Table.from_pylist(rows, schema=self.schema)
        t = with_columns(t, self.schema, QUALITY_COLUMNS)  # rows from before face quality: unknown
        missing = [n for n in self.schema.names if n not in t.column_names]
        if missing:
            raise ValueError(f"rows lack column(s) {missing}")
        vt = t.schema.field("vector").type
        if pa.types.is_fixed_size_list(vt) and vt.list_size != self.dim:
            raise ValueError(f"vectors have dim {vt.list_size}, this index expects dim {self.dim}")
        try:
            t = t.select(self.schema.names).cast(self.schema)
        except (pa.ArrowInvalid, pa.ArrowTypeError) as e:
            raise ValueError(f"rows do not fit the templates schema: {e}") from e
        if t.num_rows == 0:
            return t
        if pc.any(pc.not_equal(t["media_id"], media_id)).as_py():
            raise ValueError(f"rows for media {media_id!r} carry other media ids")
        if t["row_id"].null_count or len(pc.unique(t["row_id"])) != t.num_rows:
            raise ValueError("row_id values must be present and unique")
        kinds = set(pc.unique(t["kind"]).to_pylist())
        if not kinds <= set(KINDS):
            raise ValueError(f"unknown kind(s) {sorted(map(str, kinds - set(KINDS)))}; expected {KINDS}")
        if t["vector"].null_count:
            raise ValueError("rows without a vector")
        if "sealed" in t.column_names and t["sealed"].null_count:
            raise ValueError("rows without a sealed template in an index of sealed templates")
        flat = t["vector"].combine_chunks().flatten().to_numpy(zero_copy_only=False)
        check_vectors(flat.reshape(t.num_rows, self.dim), self.dim)
        return t

    def replace_media(self, media_id: str, rows: pa.Table | list[dict]) -> int:
        """Makes `rows` the media's only rows, in one commit (a re-run never duplicates, a reader
        never sees the media half-replaced). Returns the number of rows written."""
        t = self._conform(media_id, rows)
        if t.num_rows == 0:
            self.delete_media(media_id)
            return 0
        table = self._open(create=True)
        self._add_quality_columns(table)
        (
            table.merge_insert("row_id")
            .when_matched_update_all()
            .when_not_matched_insert_all()
            .when_not_matched_by_source_delete(f"media_id = {sql_quote(media_id)}")
            .execute(t)
        )
        return t.num_rows

    def media_rows(self, media_id: str) -> pa.Table:
        """Every row of one media, vectors included (for re-projection under a new key)."""
        table = self._open()
        if table is None:
            return self.schema.empty_table()
        return self._read(table.search().where(f"media_id = {sql_quote(media_id)}").limit(None), self.schema.names)

    def rows(self, kinds: Iterable[str] | None = None, columns: list[str] | None = None) -> pa.Table:
        """Every row (of `kinds` when given), with `columns` (default all): what an in-process exact
        search over sealed templates scans."""
        table = self._open()
        cols = columns or self.schema.names
        if table is None:
            return self.schema.empty_table().select(cols)
        q = table.search().limit(None)
        if kinds is not None:
            kinds = list(kinds)
            if set(kinds) - set(KINDS):
                raise ValueError(f"unknown kind(s) {sorted(set(kinds) - set(KINDS))}; expected {KINDS}")
            if not kinds:
                return self.schema.empty_table().select(cols)
            q = q.where(f"kind IN ({', '.join(map(sql_quote, kinds))})")
        return self._read(q, cols)

    def forget_tracks(self, media_id: str, tracks) -> None:
        """Deletes the rows of `tracks` of one media, then compacts the table and removes every old
        version (LanceDB keeps deleted rows in older versions and files until then)."""
        from datetime import timedelta

        table = self._open()
        if table is None or not tracks:
            return
        table.delete(
            f"media_id = {sql_quote(media_id)} AND track_id IN ({', '.join(str(int(t)) for t in sorted(tracks))})"
        )
        table.optimize(cleanup_older_than=timedelta(0), delete_unverified=True)

    def delete_media(self, media_id: str) -> None:
        table = self._open()
        if table is not None:
            table.delete(f"media_id = {sql_quote(media_id)}")

    # -- reading ---------------------------------------------------------------------------------
    def count(self) -> int:
        table = self._open()
        return 0 if table is None else table.count_rows()

    def media_ids(self, unsealed: bool = False) -> list[str]:
        """The media with rows (`unsealed`: only those with rows written before sealed templates)."""
        table = self._open()
        if table is None:
            return []
        q = table.search()
        if unsealed and "sealed" in self.schema.names:
            q = q.where("sealed IS NULL")
        col = q.select(["media_id"]).limit(None).to_arrow()["media_id"]
        return sorted(pc.unique(col).to_pylist())

    def _ann(self, table) -> dict | None:
        """The ANN parameters when an index exists and the table is big enough to use it."""
        version = table.version
        if self._ann_cache is None or self._ann_cache[0] != version:
            use = table.count_rows() >= self.ann_min_rows and any(i.columns == ["vector"] for i in table.list_indices())
            self._ann_cache = (version, (self.meta().get("ann") or {}) if use else None)
        return self._ann_cache[1]

    def search(
        self, vector: np.ndarray, k: int = 10, kinds: Iterable[str] | None = None, min_score: float | None = None
    ) -> list[dict]:
        """Rows nearest to `vector` (unit-norm, shape (dim,)), best first, each with `score`
        (cosine similarity) and without the vector; only scores >= `min_score` when given."""
        v = np.asarray(vector)
        if v.ndim != 1:
            raise ValueError(f"vector has shape {v.shape}, expected ({self.dim},)")
        return self.search_many(v[None, :], k, kinds=kinds, min_score=min_score)[0]

    def search_many(
        self, vectors: np.ndarray, k: int = 10, kinds: Iterable[str] | None = None, min_score: float | None = None
    ) -> list[list[dict]]:
        """`search` for each row of `vectors` (n, dim), in one query."""
        q = check_vectors(vectors, self.dim)
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        n = len(q)
        table = self._open()
        if table is None or n == 0 or table.count_rows() == 0:
            return [[] for _ in range(n)]
        cols = [c for c in self.schema.names if c not in ("vector", "sealed")]
        query = table.search(q if n > 1 else q[0]).distance_type("cosine").limit(k)
        query = query.select([c for c in cols if c in self._stored] + ["_distance"])
        if kinds is not None:
            kinds = list(kinds)
            unknown = set(kinds) - set(KINDS)
            if unknown:
                raise ValueError(f"unknown kind(s) {sorted(unknown)}; expected {KINDS}")
            if not kinds:
                return [[] for _ in range(n)]
            query = query.where(f"kind IN ({', '.join(map(sql_quote, kinds))})", prefilter=True)
        ann = self._ann(table)
        if ann is None:
            query = query.bypass_vector_index()
        else:
            query = query.nprobes(int(self.nprobes or ann.get("nprobes") or 20))
            refine = int(self.refine_factor or 0)
            if refine > 1:
                query = query.refine_factor(refine)
            if ann.get("index_type") == "IVF_HNSW_SQ":  # ef must cover every candidate the refine asks for
                query = query.ef(int(max(self.ef or ann.get("ef") or 0, k * max(refine, 1), 1.5 * k)))
        res = query.to_arrow()
        out: list[list[dict]] = [[] for _ in range(n)]
        qi = res["query_index"].to_pylist() if "query_index" in res.column_names else [0] * res.num_rows
        for i, row in zip(qi, res.drop_columns([c for c in ("query_index",) if c in res.column_names]).to_pylist()):
            row["score"] = 1.0 - float(row.pop("_distance"))
            row.update({c: None for c in cols if c not in row})  # an old table's quality: unknown
            if min_score is None or row["score"] >= min_score:
                out[i].append(row)
        for rows in out:
            rows.sort(key=lambda r: -r["score"])
        return out

    # -- the ANN index ---------------------------------------------------------------------------
    def ann_params(self, n_rows: int) -> dict:
        """Index parameters for a table of n_rows (storage/ann_index.ann_params)."""
        return ann_params(self.index_type, self.dim, self.refine_factor, n_rows)

    def build_ann_index(self, force: bool = False) -> bool:
        """Builds (or refreshes) the ANN index once the table has `ann_min_rows` rows (any size with
        `force`). New rows since the last build are folded in by `optimize`; the index is retrained
        when the table has doubled since. Returns True when it built or refreshed an index."""
        table = self._open()
        if table is None or "sealed" in self.schema.names:  # sealed rows: searched in-process, not by ANN
            return False
        n = table.count_rows()
        if n == 0 or (n < self.ann_min_rows and not force):
            return False
        meta = self.meta()
        built = (meta.get("ann") or {}).get("built_rows", 0)
        has_index = any(i.columns == ["vector"] for i in table.list_indices())
        same_type = (meta.get("ann") or {}).get("index_type") == self.index_type
        if has_index and same_type and not force and n < 2 * built:
            table.optimize()  # compacts files, adds unindexed rows to the index
            return True
        p = self.ann_params(n)
        table.create_index("vector", config=ann_config(p), replace=True)
        meta["ann"] = {**p, "built_rows": n}
        self.write_meta(meta, merge=False)
        self._ann_cache = None
        return True

    # -- meta.json -------------------------------------------------------------------------------
    def meta(self) -> dict:
        """meta.json beside the table ({} when missing), its MAC checked with `control` when given."""
        if not self.loc.exists(META_FILE):
            return {}
        meta = json.loads(self.loc.read_bytes(META_FILE))
        if self.control is not None:
            verified(meta, self.control, META_LABEL, self.loc.display(META_FILE))
        return {k: v for k, v in meta.items() if k != "mac"}

    def write_meta(self, meta: dict, merge: bool = True) -> None:
        """Writes meta.json atomically (signed with `control` when given); top-level keys are merged
        into the stored ones unless not `merge`."""
        data = {**self.meta(), **meta} if merge else dict(meta)
        data = signed(data, self.control, META_LABEL) if self.control is not None else data
        self.loc.write_bytes(META_FILE, json.dumps(data, indent=2, sort_keys=True).encode())

    def disk_bytes(self) -> int:
        """Bytes stored under index/ (all table versions, the index, meta.json)."""
        fs, root = self.loc.fs, self.loc.path(INDEX_DIR)
        return sum(fs.du(root, total=False).values()) if fs.exists(root) else 0
