"""A Parquet table's staging for publication, without the flow: every row staged or recorded with its
reason, a rerun reads nothing again, a changed table is staged anew (the old staging removed)."""

import sys
from pathlib import Path
import io
import json
import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

from faceveil.storage.image_tables import ImageTable
from faceveil.tasks.publish_table import plan_table, unpack_rows

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from private import private  # noqa: E402


def _png() -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def test_rows_staged_once_and_again_when_the_table_changes(tmp_path):
    src = tmp_path / "faces.parquet"
    pq.write_table(pa.table({"img": [_png(), b"junk", None, _png()], "n": [1, 2, 3, 4]}), src, row_group_size=3)
    table = ImageTable(str(src), str(tmp_path / "pub"))
    plan = plan_table(table)
    assert (plan["column"], plan["kind"], plan["rows"], plan["todo"]) == ("img", "binary", 4, [0, 1])
    assert unpack_rows(table, plan, 0) == {"staged": 1, "failed": 1, "no_image": 1}
    assert unpack_rows(table, plan, 1) == {"staged": 1}
    staged = private(tmp_path / "pub") / "table/in/faces"
    assert sorted(os.listdir(staged)) == ["000000000.png", "000000003.png"]
    assert (staged / "000000003.png").read_bytes() == _png()
    rows = json.loads((private(tmp_path / "pub") / "table/unpacked/000000.json").read_text())["rows"]
    assert rows[1]["status"] == "failed" and "4 bytes starting 6a756e6b" in rows[1]["reason"]
    assert plan_table(table)["todo"] == []  # a rerun stages nothing again
    pq.write_table(pa.table({"img": [_png()], "n": [9]}), src)  # the table changed: published anew
    plan = plan_table(table)
    assert plan["todo"] == [0] and plan["rows"] == 1 and not staged.exists()
