import sys
from pathlib import Path
import os

import numpy as np
import pyarrow as pa
import pytest

from faceveil.models.detections import Detections
from faceveil.storage import manifests
from faceveil.storage.state import public_location, state_location
from faceveil.storage.paths import Location, PathError, safe_relpath

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from private import private  # noqa: E402


@pytest.mark.parametrize(
    "bad", ["../etc/passwd", "/etc/passwd", "a/../../b", "..", "", "a\x00b", "x\ny", "x\x1b[2Jy", "x\x7fy"]
)
def test_hostile_relative_paths_refused(bad):
    with pytest.raises(PathError):
        safe_relpath(bad)


def test_relative_paths_normalised():
    assert safe_relpath("a/./b//c.mp4") == "a/b/c.mp4"
    # ':' and '\\' are ordinary characters in POSIX and S3 names (timestamped camera exports)
    assert safe_relpath("cam1/2026-11-30T12:00:00.mp4") == "cam1/2026-11-30T12:00:00.mp4"
    assert safe_relpath("a\\b.jpg") == "a\\b.jpg"
    assert safe_relpath("C:/x") == "C:/x"


def test_listing_does_not_follow_links_out_of_root(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.jpg").write_bytes(b"x")
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "a.mp4").write_bytes(b"x")
    os.symlink(outside, root / "link")
    os.symlink(outside / "secret.jpg", root / "s.jpg")
    links = []
    assert Location(str(root)).list_files(links=links) == ["sub/a.mp4"]
    assert sorted(links) == ["link", "s.jpg"]  # named, so that a run can say what it did not follow


def test_commit_is_atomic_and_leaves_no_temporaries(tmp_path):
    state = state_location(str(private(tmp_path / "dest")))
    loc = public_location(str(tmp_path / "dest"), state)
    src = tmp_path / "work.bin"
    src.write_bytes(b"payload")
    loc.commit_file(str(src), "a/b/out.bin")
    assert (tmp_path / "dest/a/b/out.bin").read_bytes() == b"payload"
    assert not src.exists()
    assert os.listdir(tmp_path / "dest/a/b") == ["out.bin"]
    assert os.listdir(tmp_path / "dest") == ["a"]  # nothing but the output in the public tree
    assert os.listdir(private(tmp_path / "dest") / "staging") == []  # staged in the state root, then renamed
    plain = Location(str(tmp_path / "other"))  # no state root: a hidden name beside the target, then renamed
    src.write_bytes(b"payload")
    plain.commit_file(str(src), "x/out.bin")
    assert os.listdir(tmp_path / "other") == ["x"] and os.listdir(tmp_path / "other/x") == ["out.bin"]


def test_parts_replace_instead_of_append(tmp_path):
    loc = Location(str(tmp_path))
    d = {
        0: Detections([[1, 2, 3, 4]], [0.5], track_ids=[1]),
        3: Detections([[1, 2, 3, 4], [5, 6, 9, 9]], [0.5, 0.7], track_ids=[1, 2]),
    }
    rows = manifests.detection_rows("m1", d, lambda f: f * 100, lambda f: f / 25)
    assert rows.num_rows == 3 and rows["pts"].to_pylist() == [0, 300, 300]
    for _ in range(2):
        manifests.write_part(loc, "detections", "m1", rows)
    assert manifests.read_table(loc, "detections").num_rows == 3
    tracks = manifests.track_rows("m1", rows)
    assert tracks["track_id"].to_pylist() == [1, 2] and tracks["n_frames"].to_pylist() == [2, 1]
    untracked = manifests.detection_rows("m2", {0: Detections([[1, 2, 3, 4]], [0.5])}, lambda f: 0, lambda f: 0.0)
    assert manifests.track_rows("m2", untracked).num_rows == 0


def test_schema_enforced(tmp_path):
    with pytest.raises((pa.ArrowInvalid, pa.ArrowTypeError, KeyError)):
        manifests.write_part(Location(str(tmp_path)), "media", "x", [{"media_id": "x", "frames_in": "many"}])


def test_detections_landmarks_fixed_width(tmp_path):
    d = {0: Detections([[0, 0, 5, 5]], [0.9], landmarks=np.arange(10).reshape(1, 5, 2))}
    rows = manifests.detection_rows("m", d, lambda f: 0, lambda f: 0.0)
    assert rows["landmarks"].to_pylist()[0] == list(map(float, range(10)))


def test_the_aws_credential_chain_is_left_alone(monkeypatch):
    """Instance-role credentials come from the EC2 metadata service: faceveil never turns it off."""
    from faceveil.offline import set_offline_env

    monkeypatch.delenv("AWS_EC2_METADATA_DISABLED", raising=False)
    set_offline_env()
    Location("s3://some-bucket/prefix")
    assert "AWS_EC2_METADATA_DISABLED" not in os.environ


def test_a_media_part_written_before_the_rename_reads_its_work_hash(tmp_path):
    """Rows of archives finished before `settings_hash` became `work_hash` keep their hash (else
    every such media would be done again), and columns a part predates read as null."""
    import io

    import pyarrow.parquet as pq

    loc = Location(str(tmp_path))
    old = pa.table({"media_id": ["m"], "status": ["ok"], "settings_hash": ["0123456789abcdef"]})
    buf = io.BytesIO()
    pq.write_table(old, buf)
    loc.write_bytes(manifests.part_path("media", "m"), buf.getvalue())
    for t in (manifests.read_part(loc, "media", "m"), manifests.read_table(loc, "media")):
        assert t.schema == manifests.MEDIA
        row = t.to_pylist()[0]
        assert row["work_hash"] == "0123456789abcdef" and row["status"] == "ok" and row["n_faces"] is None
    manifests.write_part(loc, "media", "m", t.to_pylist())  # rewritten under the new name
    assert "settings_hash" not in pq.read_table(io.BytesIO(loc.read_bytes("media/m.parquet"))).column_names


def test_check_parts_written_under_the_old_audit_tables_still_read(tmp_path):
    """Archives written before the checks tables were renamed (`audit/frames` ... -> `checks/frames` ...)
    keep their checks: a part only the old folder holds reads through the new name, and a part the
    new folder holds (a re-run's) takes its place."""
    import io

    import pyarrow.parquet as pq

    loc = Location(str(tmp_path))
    assert manifests.OLD_TABLES["checks/media"] == "audit/media"
    old = pa.table({"media_id": ["a", "b"], "run_id": ["r0", "r0"], "frames_checked": [3, 4]})
    for i, key in enumerate(("a", "b")):
        buf = io.BytesIO()
        pq.write_table(old.slice(i, 1), buf)
        loc.write_bytes(f"audit/media/{key}.parquet", buf.getvalue())
    assert manifests.read_part(loc, "checks/media", "a").to_pylist()[0]["frames_checked"] == 3
    manifests.write_part(loc, "checks/media", "b", [{"media_id": "b", "run_id": "r1", "frames_checked": 9}])
    manifests.write_part(loc, "checks/media", "c", [{"media_id": "c", "run_id": "r1", "frames_checked": 5}])
    t = manifests.read_table(loc, "checks/media")
    assert t.schema == manifests.CHECK_MEDIA
    assert [(r["media_id"], r["run_id"], r["frames_checked"]) for r in t.to_pylist()] == [
        ("a", "r0", 3),
        ("b", "r1", 9),
        ("c", "r1", 5),
    ]
    assert manifests.read_part(loc, "checks/media", "b").to_pylist()[0]["run_id"] == "r1"
    assert manifests.read_part(loc, "checks/media", "z") is None
    assert manifests.read_table(loc, "checks/frames").num_rows == 0  # neither folder: empty, with the schema
    assert manifests.read_table(loc, "checks").num_rows == 0  # the deep checks' table: checks/*.parquet only
    assert loc.exists("checks/media/b.parquet") and not loc.exists("audit/media/c.parquet")
