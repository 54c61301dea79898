"""Parquet image tables: the image column found (binary or HuggingFace's struct {bytes, path}), the
format told by the bytes, and a table written back with other image bytes and nothing else changed."""

import sys
from pathlib import Path
import io

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from faceveil.storage.image_tables import (
    ImageTable,
    TableError,
    find_image_column,
    image_suffix,
    is_table,
    iter_images,
    rewrite,
    row_of,
    staged_rel,
)
from faceveil.storage.paths import Location

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from private import private  # noqa: E402


def _png(v: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.full((4, 4, 3), v, np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def _jpeg() -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(buf, "JPEG")
    return buf.getvalue()


STRUCT = pa.struct([("bytes", pa.binary()), ("path", pa.string())])


def test_image_column_found_or_refused_with_a_reason():
    assert find_image_column(pa.schema([("id", pa.int64()), ("img", pa.large_binary())])) == ("img", "binary")
    assert find_image_column(pa.schema([("image", STRUCT), ("label", pa.string())])) == ("image", "struct")
    two = pa.schema([("a", pa.binary()), ("b", STRUCT)])
    with pytest.raises(TableError, match="several columns of image bytes \\(a, b\\).*--image-column"):
        find_image_column(two)
    assert find_image_column(two, "b") == ("b", "struct")
    with pytest.raises(TableError, match="no column of image bytes"):
        find_image_column(pa.schema([("id", pa.int64()), ("s", pa.struct([("x", pa.int8())]))]))
    with pytest.raises(TableError, match="no column 'c'"):
        find_image_column(two, "c")
    with pytest.raises(TableError, match="not image bytes"):
        find_image_column(pa.schema([("a", pa.string())]), "a")


def test_formats_by_signature_and_staged_names():
    assert image_suffix(_jpeg()) == ".jpg" and image_suffix(_png(1)) == ".png"
    buf = io.BytesIO()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(buf, "WEBP")
    assert image_suffix(buf.getvalue()) == ".webp"
    assert image_suffix(b"GIF89a....") is None and image_suffix(b"") is None
    assert staged_rel("train", 12, ".png") == "train/000000012.png" and row_of("train/000000012.png") == 12
    assert is_table("s3://b/x/train.PARQUET") and not is_table("/data/photos")
    loc, name = ImageTable("s3://bucket/ds/train.parquet", "s3://out/pub").source()
    assert name == "train.parquet" and loc.root == "bucket/ds"


def test_rewrite_replaces_only_the_image_bytes(tmp_path):
    """Binary and struct columns; nulls, paths, other columns, schema metadata, row order kept;
    several row groups read in small batches."""
    images = [_png(i) for i in range(7)]
    images[3] = None
    struct = pa.array([{"bytes": b, "path": f"p{i}.png"} if i != 5 else None for i, b in enumerate(images)], STRUCT)
    t = pa.table({"id": list(range(7)), "image": struct, "raw": images}).replace_schema_metadata({"huggingface": "{}"})
    pq.write_table(t, tmp_path / "in.parquet", row_group_size=3)
    pf = pq.ParquetFile(tmp_path / "in.parquet")
    assert pf.metadata.num_row_groups == 3
    seen = list(iter_images(pf, "image", "struct", 1, batch_rows=2))
    assert (
        [r for r, _, _ in seen] == [3, 4, 5]
        and seen[0][1] is None
        and seen[0][2] == "p3.png"
        and seen[2] == (5, None, None)
    )
    new = [_png(100 + i) for i in range(7)]
    n = rewrite(
        pf, "image", "struct", lambda first, k: new[first : first + k], str(tmp_path / "out.parquet"), batch_rows=2
    )
    out = pq.read_table(tmp_path / "out.parquet")
    assert n == 7 and out.schema.metadata[b"huggingface"] == b"{}" and out.schema.equals(t.schema)
    assert out.column("id").to_pylist() == list(range(7)) and out.column("raw").to_pylist() == images
    got = out.column("image").to_pylist()
    assert got[5] is None and [g["bytes"] for i, g in enumerate(got) if i != 5] == [
        b for i, b in enumerate(new) if i != 5
    ]
    assert [g["path"] for i, g in enumerate(got) if i != 5] == [f"p{i}.png" for i in range(7) if i != 5]
    n = rewrite(
        pq.ParquetFile(tmp_path / "in.parquet"),
        "raw",
        "binary",
        lambda first, k: [None] * k,
        str(tmp_path / "nulls.parquet"),
    )
    assert pq.read_table(tmp_path / "nulls.parquet").column("raw").null_count == 7


def test_table_paths_under_dest(tmp_path):
    table = ImageTable(str(tmp_path / "src/train.parquet"), str(tmp_path / "pub"))
    assert table.stem == "train" and table.work_url("in") == str(private(tmp_path / "pub") / "table/in")
    assert Location(table.work_url("out")).root == str(private(tmp_path / "pub") / "table/out")
