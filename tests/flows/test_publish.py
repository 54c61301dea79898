"""`faceveil publish` end to end on two photos: one face (replaced, measured, in the datasheet) and
one without a face (copied byte for byte, recorded)."""

import sys
from pathlib import Path
import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from skimage import data

from faceveil.cli import main

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from private import private  # noqa: E402

pytestmark = pytest.mark.slow  # a Prefect API, a Dask cluster, the generated-face pool


def test_publish_replaces_faces_copies_faceless_photos_and_writes_a_datasheet(tmp_path, prefect_server, capsys):
    src, dest = tmp_path / "src", tmp_path / "dest"
    (src / "people").mkdir(parents=True)
    Image.fromarray(data.astronaut()).save(src / "people/astronaut.png")
    Image.fromarray(data.coffee()).save(src / "coffee.jpg", quality=90)
    rc = main(["publish", str(src), str(dest), "--workers", "1", "--seed", "0"])
    out = capsys.readouterr().out
    print(out)
    assert rc == 0, out
    assert "non-commercial research" in out.split("\n")[0]  # the licence first, before anything runs
    assert (dest / "coffee.jpg").read_bytes() == (src / "coffee.jpg").read_bytes()
    orig, pub = (
        np.asarray(Image.open(src / "people/astronaut.png")),
        np.asarray(Image.open(dest / "people/astronaut.png")),
    )
    assert orig.shape == pub.shape and (orig != pub).any()
    faces = pd.read_parquet(private(dest) / "publish/faces.parquet")
    assert list(faces.media) == ["people/astronaut.png"]
    f = faces.iloc[0]
    assert (
        f.identity_cosine < 0.92
        and f.detector_score >= 0.2
        and np.isfinite(f.pose_error_deg)
        and len(f.surrogate_id) == 16
    )
    info = json.loads((private(dest) / "publish/summary.json").read_text())
    assert info["without_faces"] == ["coffee.jpg"] and info["photos"] == 2 and info["metrics"]["faces"] == 1
    assert info["generator"]["weights_id"].startswith("sha256:") and info["contracts"]["success"]
    page = (dest / "datasheet.html").read_text()
    assert "data:image/png;base64," in page and "non-commercial research" in page
    assert "Faces replaced | 1" in (dest / "datasheet.md").read_text()
    print("published face:", f.to_dict())
    # a second run has nothing new to do and gives the same table
    rc = main(["publish", str(src), str(dest), "--workers", "1", "--seed", "0"])
    assert rc == 0
    again = pd.read_parquet(private(dest) / "publish/faces.parquet")
    assert again.surrogate_id.tolist() == faces.surrogate_id.tolist()
    assert again.identity_cosine.tolist() == pytest.approx(faces.identity_cosine.tolist())


def _encoded(rgb, fmt: str, **kw) -> bytes:
    import io

    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, fmt, **kw)
    return buf.getvalue()


def image_table(path, struct: bool = True):
    """A small image dataset as one Parquet table, rows in 3 row groups of 2: a face (PNG), no face
    (JPEG), a JPEG cut short, bytes of no image format, no image at all, a face (JPEG). The image
    column is HuggingFace's struct {bytes, path} (or plain binary), beside an id and a label."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    face = np.asarray(Image.fromarray(data.astronaut()).resize((256, 256)))
    coffee = _encoded(data.coffee(), "JPEG", quality=90)
    images = [
        _encoded(face, "PNG"),
        coffee,
        coffee[: len(coffee) // 4],
        b"not an image at all" * 4,
        None,
        _encoded(face[:, ::-1], "JPEG", quality=92),
    ]
    paths = ["astronaut.png", "coffee.jpg", "cut.jpg", "text.bin", None, "astronaut_flipped.jpg"]
    column = (
        pa.array(
            [{"bytes": b, "path": p} if p else None for b, p in zip(images, paths)],
            pa.struct([("bytes", pa.binary()), ("path", pa.string())]),
        )
        if struct
        else pa.array(images, pa.binary())
    )
    t = pa.table({"id": [10, 11, 12, 13, 14, 15], "image": column, "label": list("abcdef")})
    pq.write_table(t.replace_schema_metadata({"huggingface": '{"info": {"features": {}}}'}), path, row_group_size=2)
    return t, images


def check_table_publication(t, images, out, rows, faces, info):
    """What a published image table must hold (local or read back from S3)."""
    import io

    assert out.schema.equals(t.schema) and out.schema.metadata[b"huggingface"] == b'{"info": {"features": {}}}'
    assert out.column("id").to_pylist() == [10, 11, 12, 13, 14, 15] and out.column("label").to_pylist() == list(
        "abcdef"
    )
    got = out.column("image").to_pylist()
    get = (lambda v: v and v["bytes"]) if isinstance(got[0], dict) else (lambda v: v)
    assert get(got[1]) == images[1]  # no face: the same bytes
    for i, fmt in ((0, "PNG"), (5, "JPEG")):  # faces replaced, the image in its own format and size
        new = Image.open(io.BytesIO(get(got[i])))
        old = Image.open(io.BytesIO(images[i]))
        assert new.format == fmt and new.size == old.size and get(got[i]) != images[i]
        assert (np.asarray(new).astype(int) - np.asarray(old)).any()
    assert get(got[2]) is None and get(got[3]) is None and got[4] is None  # failed rows: nothing unchecked published
    if isinstance(got[0], dict):
        assert got[2]["path"] == "cut.jpg" and got[0]["path"] == "astronaut.png"
    r = rows.set_index("row")
    assert r.status.tolist() == ["replaced", "no_face", "failed", "failed", "no_image", "replaced"]
    assert "not a JPEG, PNG or WebP image" in r.reason[3] and r.reason[2]  # each failure says why
    assert r.faces[0] == 1 and r.faces[1] == 0
    assert sorted(faces.media) == [r.media[0], r.media[5]] and (faces.identity_cosine < 0.92).all()
    tab = info["table"]
    assert tab["rows"] == 6 and tab["counts"] == {
        "replaced": 2,
        "no_face": 1,
        "failed": 2,
        "withheld": 0,
        "no_image": 1,
    }
    assert {f["row"] for f in tab["failures"]} == {2, 3} and info["failed"] == 2 and info["photos"] == 6
    assert info["without_faces"] == [r.media[1]] and info["metrics"]["faces"] == 2


def test_publish_parquet_table_in_and_out(tmp_path, prefect_server, capsys):
    """A Parquet image table in, the same table out with the faces replaced; a corrupt row fails alone
    and says why; a rerun does nothing new (no finished row anonymized again, only the failed one retried; the table not rewritten)."""
    import time

    import pyarrow.parquet as pq

    t, images = image_table(tmp_path / "train.parquet")
    dest = tmp_path / "pub"
    t0 = time.perf_counter()
    rc = main(["publish", str(tmp_path / "train.parquet"), str(dest), "--workers", "1", "--seed", "0"])
    first = time.perf_counter() - t0
    out = capsys.readouterr().out
    print(out)
    assert rc == 1, out  # two rows failed
    assert "table:" in out and "row 3: not a JPEG, PNG or WebP image" in out
    info = json.loads((private(dest) / "publish/summary.json").read_text())
    published = dest / "train.parquet"
    check_table_publication(
        t,
        images,
        pq.read_table(published),
        pd.read_parquet(private(dest) / "publish/rows.parquet"),
        pd.read_parquet(private(dest) / "publish/faces.parquet"),
        info,
    )
    assert info["table"]["rewritten"] and info["contracts"]["success"]
    assert "train.parquet: 6 rows" in (dest / "datasheet.md").read_text()
    assert pq.ParquetFile(published).metadata.num_rows == 6
    assert sorted(p.name for p in dest.iterdir()) == [
        "datasheet-faces.png",
        "datasheet.html",
        "datasheet.md",
        "train.parquet",
    ]  # staged rows and records stay private
    stamp = published.stat().st_mtime_ns
    t0 = time.perf_counter()
    rc = main(["publish", str(tmp_path / "train.parquet"), str(dest), "--workers", "1", "--seed", "0", "--json"])
    out = capsys.readouterr().out
    again = json.loads(out[out.index("\n{") + 1 :])  # after the licence line
    print(f"parquet publish: first run {first:.1f} s, rerun {time.perf_counter() - t0:.1f} s")
    assert (
        rc == 1
        and again["anonymize"]["already_done"] == 3
        and again["anonymize"]["failed"] == 1
        and not again["table"]["rewritten"]
    )
    assert published.stat().st_mtime_ns == stamp
    assert again["table"]["counts"] == info["table"]["counts"]


def test_publish_s3_folder_and_table(s3_endpoint, prefect_server, tmp_path, capsys):
    """SRC and DEST on s3:// (moto): a folder of photos and a Parquet table (plain binary column) in one
    bucket, published into another; outputs, per-face tables, datasheets read back from S3; nothing
    written beside the sources."""
    import io

    import pyarrow.parquet as pq

    from faceveil.storage.paths import Location

    src = Location("s3://faces-src/data")
    src.fs.mkdir("faces-src")
    src.fs.mkdir("faces-pub")
    png = _encoded(np.asarray(Image.fromarray(data.astronaut()).resize((256, 256))), "PNG")
    jpg = _encoded(data.coffee(), "JPEG", quality=90)
    src.fs.pipe_file(src.path("photos/people/astronaut.png"), png)
    src.fs.pipe_file(src.path("photos/coffee.jpg"), jpg)
    t, images = image_table(tmp_path / "train.parquet", struct=False)
    src.fs.put_file(str(tmp_path / "train.parquet"), src.path("tables/train.parquet"))

    rc = main(["publish", "s3://faces-src/data/photos", "s3://faces-pub/photos", "--workers", "1", "--seed", "0"])
    out = capsys.readouterr().out
    assert rc == 0, out
    pub = Location("s3://faces-pub/photos")
    assert pub.read_bytes("coffee.jpg") == jpg
    new = pub.read_bytes("people/astronaut.png")
    assert new != png and Image.open(io.BytesIO(new)).size == (256, 256)
    state = Location("s3://faces-pub/photos.faceveil-private")  # the publication's private records
    assert pub.list_files() == [
        "coffee.jpg",
        "datasheet-faces.png",
        "datasheet.html",
        "datasheet.md",
        "people/astronaut.png",
    ]  # the public tree: the dataset and its datasheet
    faces = pd.read_parquet(io.BytesIO(state.read_bytes("publish/faces.parquet")))
    assert list(faces.media) == ["people/astronaut.png"] and faces.identity_cosine.iloc[0] < 0.92
    info = json.loads(state.read_bytes("publish/summary.json"))
    assert info["without_faces"] == ["coffee.jpg"] and info["photos"] == 2 and info["contracts"]["success"]
    assert info["src"] == "s3://faces-src/data/photos" and info["dest"] == "s3://faces-pub/photos"
    assert b"data:image/png;base64," in pub.read_bytes("datasheet.html")

    rc = main(
        ["publish", "s3://faces-src/data/tables/train.parquet", "s3://faces-pub/table", "--workers", "1", "--seed", "0"]
    )
    out = capsys.readouterr().out
    assert rc == 1, out  # two rows failed
    tab, tab_state = Location("s3://faces-pub/table"), Location("s3://faces-pub/table.faceveil-private")
    assert tab.list_files() == ["datasheet-faces.png", "datasheet.html", "datasheet.md", "train.parquet"]
    info = json.loads(tab_state.read_bytes("publish/summary.json"))
    read = lambda loc, rel: pq.read_table(io.BytesIO(loc.read_bytes(rel)))  # noqa: E731
    check_table_publication(
        t,
        images,
        read(tab, "train.parquet"),
        read(tab_state, "publish/rows.parquet").to_pandas(),
        read(tab_state, "publish/faces.parquet").to_pandas(),
        info,
    )
    assert info["src"] == "s3://faces-src/data/tables/train.parquet" and b"train.parquet: 6 rows" in tab.read_bytes(
        "datasheet.md"
    )
    assert src.list_files() == ["photos/coffee.jpg", "photos/people/astronaut.png", "tables/train.parquet"]


def test_publish_table_without_one_image(tmp_path, prefect_server, capsys):
    """No row holds an image (bytes of no format, a null): nothing to anonymize, still a table out
    (both null), each row recorded, the failed one with its reason, exit 1."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"img": [b"junk", None]}), tmp_path / "t.parquet")
    rc = main(["publish", str(tmp_path / "t.parquet"), str(tmp_path / "pub"), "--workers", "1"])
    assert rc == 1, capsys.readouterr().out
    assert pq.read_table(tmp_path / "pub/t.parquet").to_pylist() == [{"img": None}, {"img": None}]
    rows = pq.read_table(private(tmp_path / "pub") / "publish/rows.parquet").to_pylist()
    assert [r["status"] for r in rows] == ["failed", "no_image"] and "not a JPEG, PNG or WebP" in rows[0]["reason"]
