"""`faceveil publish` on a Parquet table: what it refuses before anything starts (usage errors)."""

import pyarrow as pa
import pyarrow.parquet as pq

from faceveil.cli import main


def test_publish_table_refuses_an_ambiguous_image_column_before_starting(tmp_path, capsys):
    pq.write_table(pa.table({"a": [b"x"], "b": [b"y"]}), tmp_path / "two.parquet")
    assert main(["publish", str(tmp_path / "two.parquet"), str(tmp_path / "out")]) == 2
    assert "several columns of image bytes (a, b): choose one with --image-column" in capsys.readouterr().err
    assert main(["publish", str(tmp_path / "none.parquet"), str(tmp_path / "out")]) == 2
    assert "source table does not exist" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
