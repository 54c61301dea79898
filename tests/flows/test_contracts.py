"""Every anonymize run ends with its data contracts, privacy checks, report and MLflow run:
a real run passes and proves it; a manifest broken on purpose makes the next run fail, naming the
expectations, with the failure recorded in its report and MLflow run."""

import sys
from pathlib import Path
import base64
import io
import json
import shutil

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from faceveil.config import AnonymizeConfig
from faceveil.flows.launch import run_anonymize
from faceveil.storage import manifests
from faceveil.storage.paths import Location
from faceveil.validation.contracts import ContractError, check_manifests, enforce

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from private import private  # noqa: E402

pytestmark = pytest.mark.slow  # end to end: Prefect flows on a Dask cluster, the CLI with its own server

VIDEO = "cameras/lobby/clip_001.mp4"


@pytest.fixture(scope="module")
def run(sample_archive, tmp_path_factory, prefect_server):
    src = tmp_path_factory.mktemp("contract_src")
    for rel in (VIDEO, "photos/astronaut.jpg"):
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(sample_archive / rel, src / rel)
    out = tmp_path_factory.mktemp("contract_dest")
    summary = run_anonymize(AnonymizeConfig.of(src=str(src), dest=str(out), workers=2))
    assert summary["ok"] == 2
    return src, out, summary


def _mlflow_run(dest, run_id):
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{private(dest)}/mlflow/mlflow.db")
    exp = client.get_experiment_by_name("faceveil")
    return client, client.get_run(run_id), exp


def test_a_real_run_keeps_its_contracts_and_proves_its_privacy(run):
    _, dest, summary = run
    assert summary["report"]["contracts"] is True
    contracts = check_manifests(Location(str(private(dest))), public=Location(str(dest)))
    assert contracts.success, contracts.failures
    tables = {r["table"] for r in contracts.results}
    assert {"media", "detections", "tracks", "ok_media", "checks_frames", "checks_faces"} <= tables
    report = json.loads((private(dest) / "reports/latest.json").read_text())
    assert report["run_id"] == summary["run_id"] and report["status"] == "ok"
    leak, reid = report["privacy"]["leak"], report["privacy"]["reid"]
    assert leak["frames_checked"] >= 2 and leak["faces_anonymized"] >= 2  # one image + a 2 s video at 1 check/s
    assert leak["rate"] <= 0.01 and leak["faces_found"] == 0
    assert reid["faces_checked"] == report["counts"]["faces_checked"] > 0
    assert 35 < float(report["utility"]["background_psnr"]) or report["utility"]["background_psnr"] == "inf"
    assert report["utility"]["face_ssim"] < 0.9  # the faces really changed
    by_path = {m["path"]: m for m in report["media"]}
    assert by_path[VIDEO]["input_sha256"] and by_path[VIDEO]["output_sha256"] != by_path[VIDEO]["input_sha256"]
    assert report["coverage"][VIDEO]["n_frames"] == by_path[VIDEO]["frames"] and report["coverage"][VIDEO]["detected"]
    assert {m["role"] for m in report["models"]} == {"detector", "embedder"}
    assert all(m["weights"].startswith("sha256:") for m in report["models"])
    # thumbnails are of the anonymized outputs: the detector finds no face in them
    from faceveil.models.detectors import DetectorSettings, create_detector

    det = create_detector("centerface", DetectorSettings(threshold=0.3))
    assert report["thumbnails"]
    for t in report["thumbnails"]:
        rgb = np.asarray(Image.open(io.BytesIO(base64.b64decode(t["png_base64"]))).convert("RGB"))
        assert len(det.detect(rgb)) == 0, t["path"]
    html = (private(dest) / f"reports/{summary['run_id']}.html").read_text()
    assert summary["run_id"] in html and "data:image/png;base64," in html


def test_the_run_is_an_mlflow_run(run):
    _, dest, summary = run
    report = json.loads((private(dest) / "reports/latest.json").read_text())
    client, r, exp = _mlflow_run(dest, report["mlflow"]["run_id"])
    assert r.info.experiment_id == exp.experiment_id and r.info.status == "FINISHED"
    assert r.info.run_name == summary["run_id"] and r.data.tags["faceveil.flow"] == "anonymize_archive"
    assert r.data.params["settings.method"] == "mosaic"
    assert "sha256:" in r.data.params["models.detector"] and "sha256:" in r.data.params["models.embedder"]
    assert r.data.params["code_version"]
    assert r.data.metrics["privacy.leak.rate"] == pytest.approx(report["privacy"]["leak"]["rate"])
    assert r.data.metrics["counts.ok"] == 2 and r.data.metrics["contracts.failed"] == 0
    assert r.data.metrics["utility.face_ssim"] == pytest.approx(report["utility"]["face_ssim"])
    names = {a.path for a in client.list_artifacts(r.info.run_id)}
    assert {"report.html", "report.json", "coverage.png", "privacy.png"} <= names


def test_broken_manifest_fails_the_next_run_naming_the_expectations(run, tmp_path):
    src, dest, _ = run
    broken = tmp_path / "broken"
    shutil.copytree(dest, broken)
    shutil.copytree(private(dest), private(broken))
    shutil.copy(src / "photos/astronaut.jpg", broken / "photos/original.jpg")  # something unvouched for in DEST
    media = pq.read_table(private(broken) / "media").to_pandas()
    mid = media.set_index("rel_path").loc[VIDEO].media_id
    part = private(broken) / f"detections/{mid}.parquet"
    t = pq.read_table(part)
    x2 = t.column("x2").to_pylist()
    x2[0] = 10_000.0  # a box outside the frame
    pq.write_table(t.set_column(t.schema.get_field_index("x2"), "x2", pa.array(x2, pa.float32())), part)
    mpart = private(broken) / f"media/{mid}.parquet"
    m = pq.read_table(mpart)
    pq.write_table(
        m.set_column(m.schema.get_field_index("has_audio_out"), "has_audio_out", pa.array([False], pa.bool_())), mpart
    )  # audio lost
    with pytest.raises(ContractError) as e:
        enforce(check_manifests(Location(str(private(broken))), public=Location(str(broken))))
    # the flow itself: a re-run (nothing left to do) checks the archive and fails
    with pytest.raises(ContractError) as e:
        run_anonymize(AnonymizeConfig.of(src=str(src), dest=str(broken), workers=1))
    msg = str(e.value)
    assert "detections: expect_column_values_to_be_between(right_room) failed for 1 row(s)" in msg
    assert "ok_media: expect_column_values_to_be_in_set(audio_kept) failed for 1 row(s)" in msg
    assert "public_tree: expect_column_values_to_be_in_set(published) failed for 1 row(s)" in msg
    report = json.loads((private(broken) / "reports/latest.json").read_text())
    assert report["status"] == "failed" and report["contracts"]["success"] is False
    failed = {(r["table"], r["column"]) for r in report["contracts"]["results"] if not r["success"]}
    assert failed == {("detections", "right_room"), ("ok_media", "audio_kept"), ("public_tree", "published")}
    _, r, _ = _mlflow_run(broken, report["mlflow"]["run_id"])
    assert r.info.status == "FAILED" and r.data.metrics["contracts.failed"] == 3


def test_unchanged_manifests_reuse_their_contract_results(run, tmp_path, monkeypatch):
    """A second check of the same manifests reuses the first one's results (no Great Expectations);
    any change (a stray file in DEST) is checked again, and fails."""
    from faceveil.validation import contracts

    _, dest, _ = run
    state, public = Location(str(private(dest))), Location(str(dest))
    first = check_manifests(state, public=public)
    assert first.success and len(first.results) > 10

    def no_gx():
        raise RuntimeError("Great Expectations loaded")

    monkeypatch.setattr(contracts, "_gx", no_gx)
    again = check_manifests(state, public=public)
    assert again.results == first.results
    with pytest.raises(RuntimeError, match="Great Expectations loaded"):  # other suite arguments: not the same check
        check_manifests(state, public=public, max_leak=0.5)
    copy = tmp_path / "dest"
    shutil.copytree(dest, copy)
    shutil.copytree(private(dest), private(copy))
    (copy / "stray.txt").write_text("not an output")
    with pytest.raises(RuntimeError, match="Great Expectations loaded"):
        check_manifests(Location(str(private(copy))), public=Location(str(copy)))
    monkeypatch.undo()
    report = check_manifests(Location(str(private(copy))), public=Location(str(copy)))
    assert [(r["table"], r["column"]) for r in report.results if not r["success"]] == [("public_tree", "published")]


def test_an_archive_written_before_the_checks_tables_were_renamed_keeps_its_contracts(run, tmp_path):
    """An archive whose checks sit under the old `audit/{frames,faces,media}` folders reads them
    through the new tables: every finished media still has its checks, and the contracts come out
    the same as on the archive written now."""
    _, dest, _ = run
    now = check_manifests(Location(str(private(dest))), public=Location(str(dest)))
    old = tmp_path / "dest"
    shutil.copytree(dest, old)
    shutil.copytree(private(dest), private(old))
    for table in ("frames", "faces", "media"):
        (private(old) / "audit").mkdir(exist_ok=True)
        (private(old) / "checks" / table).rename(private(old) / "audit" / table)
    (private(old) / "checks" / "contracts.json").unlink()  # checked again, not the kept results
    state = Location(str(private(old)))
    assert manifests.read_table(state, "checks/media").num_rows == 2
    again = check_manifests(state, public=Location(str(old)))
    assert again.success and again.results == now.results
