"""A Parquet image table published (storage/image_tables.py): plan (the image column, row groups,
whether an earlier run's staging still holds for this table) -> unpack one row group per task (each
row's image bytes staged as a file; rows without bytes or with bytes of no known image format
recorded there) -> [the folder flow on the staged files] -> assemble the output table batch by batch,
each row's bytes from the run's output (a failed or withheld row's bytes become null: nothing
unchecked is published), and the per-row record publish/rows.parquet in the publication's state root.
`assemble_table` is over 60 lines: the rewritten table, the per-row record and the figures come from one
list of row records; the record's schema and the figures are listed one column a line."""

from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile

from faceveil.config import AnonymizeConfig
from faceveil.pipeline.places import state_of
from faceveil.storage import manifests
from faceveil.storage.image_tables import (
    WORK,
    ImageTable,
    find_image_column,
    image_suffix,
    iter_images,
    open_table,
    rewrite,
    staged_rel,
)
from faceveil.storage.paths import META_DIR, Location

PLAN = f"{WORK}/plan.json"
STAGED_NOTE = f"{META_DIR}/table.json"  # in the staging's own _faceveil/, which the run does not take for media
ROWS = "publish/rows.parquet"
ASSEMBLED = f"{WORK}/assembled.json"
SHOWN_FAILURES = 50  # failed rows named in the summary (all of them are in rows.parquet)


def _marker(g: int) -> str:
    return f"{WORK}/unpacked/{g:06d}.json"


def _read_json(loc: Location, rel: str) -> dict | None:
    return json.loads(loc.read_bytes(rel)) if loc.exists(rel) else None


def plan_table(table: ImageTable) -> dict:
    """{"column", "kind", "rows", "row_groups", "fingerprint", "todo": row groups still to unpack}.
    A table that changed since the last run (or another image column) is published anew: the old
    staging and its run are removed first."""
    src, name = table.source()
    if not src.exists(name):
        raise FileNotFoundError(f"{table.url}: source table does not exist")
    with open_table(src, name) as pf:
        column, kind = find_image_column(pf.schema_arrow, table.image_column)
        n_rows, n_groups = pf.metadata.num_rows, pf.metadata.num_row_groups
    table.destination().ensure_root()
    dest = table.state_root()
    plan = {
        "source": table.url,
        "column": column,
        "kind": kind,
        "rows": n_rows,
        "row_groups": n_groups,
        "fingerprint": src.fingerprint(name),
    }
    old = _read_json(dest, PLAN)
    if old is not None and {k: old.get(k) for k in plan} != plan:
        for part in ("in", "out", "unpacked"):
            folder = dest.path(f"{WORK}/{part}")
            if dest.fs.exists(folder):
                dest.fs.rm(folder, recursive=True)
        dest.remove(ASSEMBLED)
    if old is None or {k: old.get(k) for k in plan} != plan:
        dest.write_bytes(PLAN, json.dumps(plan, indent=2).encode())
    staged = Location(table.work_url("in"), table.storage_options)
    if not staged.exists(STAGED_NOTE):  # the staging exists (on S3 too) even when no row has an image
        staged.write_bytes(STAGED_NOTE, json.dumps({"table": table.url}).encode())
    todo = [g for g in range(plan["row_groups"]) if not dest.exists(_marker(g))]
    return {**plan, "todo": todo}


def unpack_rows(table: ImageTable, plan: dict, row_group: int) -> dict:
    """Stages each row's image of one row group as table/in/<stem>/<row>.<format> in the state root;
    records every row (staged, no_image, failed with its reason) in the row group's marker, written
    last (a crash before it: the row group is unpacked again). {status: rows}."""
    src, name = table.source()
    dest, staged = table.state_root(), Location(table.work_url("in"), table.storage_options)
    with open_table(src, name) as pf:
        rows = [
            _stage(table, staged, row, data, path)
            for row, data, path in iter_images(pf, plan["column"], plan["kind"], row_group)
        ]
    dest.write_bytes(_marker(row_group), json.dumps({"fingerprint": plan["fingerprint"], "rows": rows}).encode())
    counts: dict = {}
    for r in rows:
        counts[r["status"]] = counts.get(r["status"], 0) + 1
    return counts


def _stage(table: ImageTable, staged: Location, row: int, data: bytes | None, path: str | None) -> dict:
    """One row's record; its image bytes written to the staging when they are an image."""
    if data is None:
        status, reason = (
            ("failed", f"image not embedded in the table (path only: {path})") if path else ("no_image", None)
        )
        return {"row": row, "media": None, "status": status, "reason": reason}
    suffix = image_suffix(data)
    if suffix is None:
        return {
            "row": row,
            "media": None,
            "status": "failed",
            "reason": f"not a JPEG, PNG or WebP image ({len(data)} bytes starting {data[:8].hex()})",
        }
    rel = staged_rel(table.stem, row, suffix)
    staged.write_bytes(rel, data)
    return {"row": row, "media": rel, "status": "staged", "reason": None}


def _row_records(table: ImageTable, plan: dict, config: AnonymizeConfig) -> list[dict]:
    """One record per row of the table: row, media (staged file), status (replaced, no_face, failed,
    withheld, no_image), reason, faces, the output's path and SHA-256."""
    dest = table.state_root()
    media = manifests.read_table(state_of(config), "media").to_pandas().set_index("rel_path")
    rows = []
    for g in range(plan["row_groups"]):
        marker = _read_json(dest, _marker(g))
        if marker is None:
            raise RuntimeError(f"row group {g} of {table.url} was not unpacked")
        rows += marker["rows"]
    for r in rows:
        r.update(faces=None, output_path=None, output_sha256=None)
        if r["status"] != "staged":
            continue
        if r["media"] not in media.index:
            r.update(status="failed", reason="not processed")
            continue
        m = media.loc[r["media"]]
        if m.status == "ok":
            r.update(
                status="replaced" if m.n_faces else "no_face",
                faces=int(m.n_faces),
                output_path=m.output_path,
                output_sha256=m.output_sha256,
            )
        else:
            r.update(status="withheld" if m.status == "leaked" else "failed", reason=m.reason)
    return sorted(rows, key=lambda r: r["row"])


def assemble_table(table: ImageTable, plan: dict, config: AnonymizeConfig) -> dict:
    """DEST/<SRC's name>: SRC with each row's image bytes from the run's output (same format as the
    input's; rows without a face byte for byte), read and written `BATCH_ROWS` rows at a time; failed
    and withheld rows get null bytes. Not rewritten when an earlier run assembled the same rows.
    publish/rows.parquet in the state root: the per-row record. Returns the table's figures."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    src, name = table.source()
    dest, state, out = table.destination(), table.state_root(), Location(config.dest, config.storage_options)
    rows = _row_records(table, plan, config)
    digest = hashlib.sha256(
        json.dumps(
            [plan["fingerprint"], plan["column"]] + [[r["row"], r["status"], r["output_sha256"]] for r in rows]
        ).encode()
    ).hexdigest()
    done = _read_json(state, ASSEMBLED)
    written = not (done is not None and done.get("digest") == digest and dest.exists(name))
    if written:
        by_row = {r["row"]: r for r in rows}

        def images_of(first: int, n: int) -> list:
            got = [by_row[i] for i in range(first, first + n)]
            return [out.read_bytes(r["output_path"]) if r["output_path"] else None for r in got]

        fd, tmp = tempfile.mkstemp(suffix=".parquet")
        os.close(fd)
        try:
            with open_table(src, name) as pf:
                n = rewrite(pf, plan["column"], plan["kind"], images_of, tmp)
            if n != plan["rows"]:
                raise RuntimeError(f"{table.url}: read {n} rows, its metadata says {plan['rows']}")
            dest.commit_file(tmp, name)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        state.write_bytes(ASSEMBLED, json.dumps({"digest": digest}).encode())
    record = pa.Table.from_pylist(
        [{k: r[k] for k in ("row", "media", "status", "reason", "faces")} for r in rows],
        schema=pa.schema(
            [
                ("row", pa.int64()),
                ("media", pa.string()),
                ("status", pa.string()),
                ("reason", pa.string()),
                ("faces", pa.int64()),
            ]
        ),
    )
    buf = io.BytesIO()
    pq.write_table(record, buf)
    state.write_bytes(ROWS, buf.getvalue())
    counts = {s: sum(r["status"] == s for r in rows) for s in ("replaced", "no_face", "failed", "withheld", "no_image")}
    failures = [{"row": r["row"], "reason": r["reason"]} for r in rows if r["status"] in ("failed", "withheld")]
    return {
        "source": table.url,
        "dest": table.dest,
        "state": table.state,
        "output": name,
        "image_column": plan["column"],
        "rows": plan["rows"],
        "counts": counts,
        "unstaged_failed": sum(r["status"] == "failed" and r["media"] is None for r in rows),
        "failures": failures[:SHOWN_FAILURES],
        "rewritten": written,
        "record": ROWS,
    }
