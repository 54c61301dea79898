"""Data contracts on a real flow output: they pass, and a manifest broken on purpose fails them
with the broken expectations named."""
import shutil

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from faceveil.config import AnonymizeConfig
from faceveil.flows.anonymize import run_anonymize
from faceveil.storage.paths import Location
from faceveil.validation.contracts import ContractError, check_manifests, enforce

VIDEO = "cameras/lobby/clip_001.mp4"


@pytest.fixture(scope="module")
def dest(sample_archive, tmp_path_factory, prefect_server):
    src = tmp_path_factory.mktemp("contract_src")
    for rel in (VIDEO, "photos/astronaut.jpg"):
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(sample_archive / rel, src / rel)
    out = tmp_path_factory.mktemp("contract_dest")
    assert run_anonymize(AnonymizeConfig(src=str(src), dest=str(out), workers=2))["ok"] == 2
    return out


def test_a_real_run_keeps_its_contracts(dest):
    report = check_manifests(Location(str(dest)))
    assert report.success, report.failures
    assert len(report.results) >= 12


def test_broken_manifest_fails_naming_the_expectations(dest, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(dest, broken)
    media = pq.read_table(broken / "_faceveil/media").to_pandas()
    mid = media.set_index("rel_path").loc[VIDEO].media_id
    part = broken / f"_faceveil/detections/{mid}.parquet"
    t = pq.read_table(part)
    x2 = t.column("x2").to_pylist()
    x2[0] = 10_000.0  # a box outside the frame
    pq.write_table(t.set_column(t.schema.get_field_index("x2"), "x2", pa.array(x2, pa.float32())), part)
    mpart = broken / f"_faceveil/media/{mid}.parquet"
    m = pq.read_table(mpart)
    pq.write_table(m.set_column(m.schema.get_field_index("has_audio_out"), "has_audio_out",
                                pa.array([False], pa.bool_())), mpart)  # audio lost
    with pytest.raises(ContractError) as e:
        enforce(Location(str(broken)))
    msg = str(e.value)
    assert "detections: expect_column_values_to_be_between(right_room) failed for 1 row(s)" in msg
    assert "ok_media: expect_column_values_to_be_in_set(audio_kept) failed for 1 row(s)" in msg
