"""Image datasets held as a Parquet table (local or s3://): one row per image, its encoded bytes in one
column, either a binary column or a HuggingFace-style struct {bytes, path}. Finding that column,
naming a row's image by its format, reading rows in bounded batches and writing the same table back
with other image bytes (same schema, metadata and row order; every other column untouched).

How a table is published (flows/publish.py): each row's bytes are staged as one file under the
publication's state root, table/in/ (`staged_rel`), the folder flow runs on them with its destination
table/out/ there, and the output table is assembled from the originals, batch by batch, into DEST."""

from __future__ import annotations

import contextlib
import posixpath
from dataclasses import dataclass, field
from typing import Iterator

import pyarrow as pa
import pyarrow.parquet as pq

from faceveil.storage.paths import Location
from faceveil.storage.state import default_state_url, public_location, state_location

WORK = "table"  # in the state root: table/{in,out,unpacked}, the staged rows and their run
BATCH_ROWS = 64  # rows read (and written) at once: memory stays a few batches of images
_MAGIC = ((b"\xff\xd8\xff", ".jpg"), (b"\x89PNG\r\n\x1a\n", ".png"))


class TableError(ValueError):
    """A table that cannot be published as asked (no image column, several without a choice, ...)."""


def is_table(url: str) -> bool:
    return url.lower().rstrip("/").endswith(".parquet")


@dataclass(frozen=True)
class ImageTable:
    """SRC, a Parquet file (`url`), its image column (None: found by `find_image_column`), where it
    is published (`dest`, a folder: DEST/<name of SRC>) and the publication's private state root
    (`state`, default beside DEST)."""

    url: str
    dest: str
    image_column: str | None = None
    storage_options: dict = field(default_factory=dict, hash=False)
    state: str | None = None

    def __post_init__(self):
        if self.state is None:
            object.__setattr__(self, "state", default_state_url(self.dest))

    def source(self) -> tuple[Location, str]:
        """(the folder holding SRC, SRC's name in it)."""
        url = self.url.rstrip("/")
        parent, name = posixpath.split(url) if "://" in url else posixpath.split(url.replace("\\", "/"))
        return Location(parent or ".", self.storage_options), name

    @property
    def name(self) -> str:
        return self.source()[1]

    @property
    def stem(self) -> str:
        return posixpath.splitext(self.name)[0]

    def destination(self) -> Location:
        """DEST, the public tree (its commits stage in the state root)."""
        return public_location(self.dest, self.state_root(), self.storage_options)

    def state_root(self) -> Location:
        return state_location(self.state, self.storage_options)

    def work_url(self, part: str) -> str:
        """The URL of the state root's table/<part> (a folder the staged run uses as its SRC or DEST)."""
        return self.state_root().display(f"{WORK}/{part}")


@contextlib.contextmanager
def open_table(loc: Location, rel: str) -> Iterator[pq.ParquetFile]:
    """The Parquet file at `rel` for the block, read lazily (row groups on demand: s3:// by ranged reads)."""
    with loc.fs.open(loc.path(rel), "rb") as f:
        yield pq.ParquetFile(f)


def check_table(table: ImageTable) -> tuple[str, str]:
    """(image column, kind) of a table that exists and has one: read from its footer only."""
    src, name = table.source()
    if not src.exists(name):
        raise FileNotFoundError(f"{table.url}: source table does not exist")
    try:
        with src.fs.open(src.path(name), "rb") as f:
            schema = pq.read_schema(f)
    except pa.ArrowInvalid as e:
        raise TableError(f"{table.url}: not a Parquet file ({e})") from None
    return find_image_column(schema, table.image_column)


def _is_binary(t: pa.DataType) -> bool:
    return pa.types.is_binary(t) or pa.types.is_large_binary(t)


def _kind(f: pa.Field) -> str | None:
    if _is_binary(f.type):
        return "binary"
    if pa.types.is_struct(f.type):
        names = {f.type.field(i).name: f.type.field(i).type for i in range(f.type.num_fields)}
        if "bytes" in names and _is_binary(names["bytes"]):
            return "struct"
    return None


def find_image_column(schema: pa.Schema, name: str | None = None) -> tuple[str, str]:
    """(column name, "binary" | "struct"): the one column of image bytes (a binary column, or a struct
    with a binary field "bytes", as HuggingFace's Image feature stores it), or the one named."""
    candidates = [(f.name, _kind(f)) for f in schema if _kind(f)]
    if name is not None:
        if name not in schema.names:
            raise TableError(f"no column {name!r} in the table (columns: {', '.join(schema.names)})")
        kind = _kind(schema.field(name))
        if kind is None:
            raise TableError(
                f"column {name!r} holds {schema.field(name).type}, not image bytes "
                "(binary, or a struct with a binary field 'bytes')"
            )
        return name, kind
    if not candidates:
        raise TableError(
            f"no column of image bytes in the table (columns: {', '.join(schema.names)}); "
            "expected a binary column or a struct {bytes, path}"
        )
    if len(candidates) > 1:
        raise TableError(
            f"several columns of image bytes ({', '.join(n for n, _ in candidates)}): choose one with --image-column"
        )
    return candidates[0]


def image_suffix(data: bytes) -> str | None:
    """The file suffix of encoded image bytes by their signature (JPEG, PNG, WebP), None otherwise."""
    for magic, suffix in _MAGIC:
        if data.startswith(magic):
            return suffix
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return ".webp"
    return None


def staged_rel(stem: str, row: int, suffix: str) -> str:
    """The staged file of row `row` (0-based, in table order): `<stem>/<row, 9 digits><suffix>`."""
    return f"{stem}/{row:09d}{suffix}"


def row_of(rel: str) -> int:
    return int(posixpath.splitext(posixpath.basename(rel))[0])


def _bytes_and_paths(col: pa.Array, kind: str) -> tuple[list, list]:
    if kind == "binary":
        return col.to_pylist(), [None] * len(col)
    valid = col.is_valid().to_pylist()
    data = col.field("bytes").to_pylist()
    try:
        paths = col.field("path").to_pylist()
    except KeyError:
        paths = [None] * len(col)
    return [d if v else None for d, v in zip(data, valid)], [p if v else None for p, v in zip(paths, valid)]


def iter_images(
    pf: pq.ParquetFile, column: str, kind: str, row_group: int, batch_rows: int = BATCH_ROWS
) -> Iterator[tuple[int, bytes | None, str | None]]:
    """(row, image bytes or None, the struct's path or None) for every row of one row group, read
    `batch_rows` at a time (only the image column)."""
    row = sum(pf.metadata.row_group(g).num_rows for g in range(row_group))
    for batch in pf.iter_batches(batch_size=batch_rows, row_groups=[row_group], columns=[column]):
        data, paths = _bytes_and_paths(batch.column(0), kind)
        for d, p in zip(data, paths):
            yield row, d, p
            row += 1


def with_images(batch: pa.RecordBatch, column: str, kind: str, images: list[bytes | None]) -> pa.RecordBatch:
    """`batch` with the image bytes of `column` replaced by `images` (None: null bytes; a struct keeps
    its other fields and its own nulls)."""
    i = batch.schema.get_field_index(column)
    col = batch.column(i)
    if kind == "binary":
        new = pa.array(images, type=col.type)
    else:
        children = [
            pa.array(images, type=col.type.field(j).type) if col.type.field(j).name == "bytes" else col.field(j)
            for j in range(col.type.num_fields)
        ]
        new = pa.StructArray.from_arrays(children, fields=list(col.type), mask=col.is_null())
    return batch.set_column(i, batch.schema.field(i), new)


def rewrite(
    pf: pq.ParquetFile, column: str, kind: str, images_of, local_path: str, batch_rows: int = BATCH_ROWS
) -> int:
    """Writes the table of `pf` to `local_path` with each batch's image bytes from `images_of(first
    row, n rows)` (a list of bytes or None); the schema, its metadata and the row order kept. Rows."""
    row = 0
    with pq.ParquetWriter(local_path, pf.schema_arrow, compression="zstd") as writer:
        for batch in pf.iter_batches(batch_size=batch_rows):
            writer.write_batch(with_images(batch, column, kind, images_of(row, batch.num_rows)))
            row += batch.num_rows
    return row
