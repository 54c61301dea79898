"""The flow against real S3 semantics: moto's server on 127.0.0.1, s3:// source and destination."""

import os
import sys
from pathlib import Path

import pytest

from faceveil.config import AnonymizeConfig
from faceveil.flows.launch import run_anonymize
from faceveil.storage import manifests
from faceveil.storage.paths import Location

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from private import private  # noqa: E402

pytestmark = pytest.mark.slow  # end to end: Prefect flows on a Dask cluster, the CLI with its own server


def test_s3_to_s3(s3_endpoint, sample_archive, prefect_server, tmp_path):
    """The archive in one bucket, the outputs in another: outputs, manifests and the report read back
    from S3, the leak check passes on the outputs, an unchanged rerun redoes nothing (ETags)."""
    src = Location("s3://archive/cams")
    src.fs.mkdir("archive")
    src.fs.mkdir("published")
    for rel in ("cameras/parking/clip_002.mkv", "photos/astronaut.jpg", "bad/text.mp4", "bad/truncated.mp4"):
        src.fs.put_file(str(sample_archive / rel), src.path(rel))
    scratch = tmp_path / "scratch"
    summary = run_anonymize(
        AnonymizeConfig.of(
            src="s3://archive/cams", dest="s3://published/anonymized", workers=2, scratch_dir=str(scratch)
        )
    )
    assert summary["ok"] == 2 and summary["failed"] == 2
    assert summary["report"]["contracts"] and summary["report"]["privacy"]["leak"]["faces_found"] == 0
    assert not [p for p in scratch.rglob("*")], "downloaded originals or temporaries left in scratch"
    dest, state = Location("s3://published/anonymized"), Location("s3://published/anonymized.faceveil-private")
    files = dest.list_files()
    assert set(files) == {"cameras/parking/clip_002.mkv", "photos/astronaut.jpg"}  # the public tree: outputs only
    assert {"summary.json", summary["report"]["html"]} <= set(state.list_files())  # the rest in a sibling prefix
    assert b"<html" in state.read_bytes(summary["report"]["html"])[:200].lower()
    assert not Location("s3://archive/anonymized").fs.exists("archive/anonymized")  # nothing in the source bucket
    assert not any(".tmp-" in f for f in files)
    media = manifests.read_table(state, "media").to_pandas().set_index("rel_path")
    assert (
        media.loc["cameras/parking/clip_002.mkv", "frames_out"]
        == media.loc["cameras/parking/clip_002.mkv", "frames_in"]
        == 50
    )
    assert media.loc["cameras/parking/clip_002.mkv", "has_audio_out"]
    assert "not a readable media file" in media.loc["bad/text.mp4", "reason"]
    # the committed output is a real video
    from faceveil.storage.media import probe_video

    with dest.local_file("cameras/parking/clip_002.mkv", str(tmp_path)) as local:
        assert probe_video(local).n_frames == 50
    again = run_anonymize(AnonymizeConfig.of(src="s3://archive/cams", dest="s3://published/anonymized", workers=2))
    assert again["already_done"] == 2
    assert manifests.read_table(state, "detections").num_rows == media.n_faces.sum()


def test_reversible_on_s3_vault_index_restore(s3_endpoint, sample_archive, prefect_server, tmp_path):
    """Vault, identity index and access log on s3://, restored from there with the key."""
    import numpy as np

    from faceveil.flows.restore import run_restore
    from faceveil.storage import access_log
    from faceveil.storage.keys import MasterKey, VaultLock
    from faceveil.storage.media import read_image
    from faceveil.ops.search import probe_vector, search_tracks
    from faceveil.tasks.restore_media import RestoreConfig

    src = Location("s3://vault/src")
    src.fs.mkdir("vault")
    src.fs.put_file(str(sample_archive / "photos/grace_hopper.png"), src.path("photos/grace_hopper.png"))
    key = MasterKey.generate()
    summary = run_anonymize(
        AnonymizeConfig.of(
            src="s3://vault/src", dest="s3://vault/dest", workers=1, reversible=True, vault_lock=VaultLock.of(key)
        ),
        key,
    )
    assert summary["ok"] == 1
    dest = Location("s3://vault/dest.faceveil-private")  # the archive's state root
    assert Location("s3://vault/dest").list_files() == ["photos/grace_hopper.png"]
    files = set(dest.list_files())
    assert "vault/keyinfo.json" in files
    assert any(f.startswith("vault/entries/") for f in files)
    assert any(f.startswith("index/") for f in files)
    v, _ = probe_vector(str(sample_archive / "photos/grace_hopper.png"), "dlib-resnet")
    matches, _ = search_tracks(dest, key, v)
    assert matches and matches[0].rel_path == "photos/grace_hopper.png"
    access_log.append(dest, key, actor="test", action="search", reason="s3 check", matched=[matches[0].ref])
    assert access_log.verify(dest, key) == []
    report = run_restore(RestoreConfig.of("s3://vault/dest", str(tmp_path / "restored"), all=True, workers=1), key)
    assert report["ok"] == 1
    a, _ = read_image(str(sample_archive / "photos/grace_hopper.png"))
    b, _ = read_image(str(tmp_path / "restored/photos/grace_hopper.png"))
    assert np.array_equal(a, b)


def test_storage_credentials_never_reach_prefect_or_the_outputs(s3_endpoint, sample_archive, prefect_server, tmp_path):
    """Credentials given as storage options work for every task, and are nowhere afterwards: not in
    Prefect's database (flow parameters are stored there), DEST, the MLflow store or scratch."""
    secret = "faceveil-test-secret-" + os.urandom(8).hex()
    opts = {"key": "AKIAFACEVEILTEST", "secret": secret}
    src = Location("s3://creds/src", opts)
    src.fs.mkdir("creds")
    src.fs.put_file(str(sample_archive / "photos/astronaut.jpg"), src.path("photos/astronaut.jpg"))
    scratch = tmp_path / "scratch"
    summary = run_anonymize(
        AnonymizeConfig.of(
            src="s3://creds/src", dest="s3://creds/dest", workers=1, storage_options=opts, scratch_dir=str(scratch)
        )
    )
    assert summary["ok"] == 1, summary["failures"]
    needle = secret.encode()
    for url in ("s3://creds/dest", "s3://creds/dest.faceveil-private"):  # DEST and its state root
        loc = Location(url, opts)
        for rel in loc.list_files():
            assert needle not in loc.read_bytes(rel), f"{url}/{rel} holds the secret"
    places = [Path(os.environ["PREFECT_HOME"]), Path(os.environ["FACEVEIL_HOME"]), scratch]
    files = [p for root in places if root.exists() for p in root.rglob("*") if p.is_file()]
    assert any(p.name.startswith("prefect.db") for p in files), "Prefect's database was not found to scan"
    for p in files:
        assert needle not in p.read_bytes(), f"{p} holds the secret"


def test_two_access_log_writers_on_s3_never_share_a_seq(s3_endpoint):
    """Appends race on one s3:// log: each row file is created by a conditional PUT, so a writer that
    loses a seq takes the next one; no seq is lost or duplicated and the chain verifies."""
    import threading

    from faceveil.storage import access_log
    from faceveil.storage.keys import MasterKey

    loc = Location("s3://racelog/archive")
    loc.fs.mkdir("racelog")
    key, n, start = MasterKey.generate(), 12, threading.Barrier(2)
    errors = []

    def writer(name: str) -> None:
        try:
            own = Location("s3://racelog/archive")  # each writer its own handle, as two machines would
            start.wait()
            for i in range(n):
                access_log.append(own, key, actor=name, action="search", reason=f"{name} {i}")
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=writer, args=(w,)) for w in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    rows = access_log.read(loc)
    assert sorted(r["seq"] for r in rows) == list(range(1, 2 * n + 1))
    assert sorted(r["reason"] for r in rows) == sorted(f"{w} {i}" for w in "ab" for i in range(n))
    assert access_log.verify(loc, key) == []


def test_mlflow_artifacts_on_s3(s3_endpoint, sample_archive, prefect_server, tmp_path, monkeypatch, capsys):
    """`faceveil anonymize --mlflow-uri sqlite:///... --mlflow-artifacts s3://bucket/prefix`: the run's
    MLflow artifacts (the run's report, its JSON, plots) land in the bucket, nothing beside the outputs;
    read back from S3 with s3fs and with MLflow's own client. The S3 endpoint comes from
    $FACEVEIL_S3_ENDPOINT when $MLFLOW_S3_ENDPOINT_URL is not set. A store whose experiment keeps
    another artifact root logs to a second experiment named after the root."""
    import json

    from faceveil.cli import main
    from faceveil.validation.mlflow_log import open_store

    monkeypatch.delenv("MLFLOW_S3_ENDPOINT_URL", raising=False)  # set from FACEVEIL_S3_ENDPOINT, undone afterwards
    bucket = Location("s3://mlflow-artifacts/faceveil")
    bucket.fs.mkdir("mlflow-artifacts")
    src, dest, uri = tmp_path / "src", tmp_path / "out", f"sqlite:///{tmp_path / 'mlflow.db'}"
    (src / "photos").mkdir(parents=True)
    (src / "photos/astronaut.jpg").write_bytes((sample_archive / "photos/astronaut.jpg").read_bytes())
    capsys.readouterr()
    code = main(
        [
            "anonymize",
            str(src),
            str(dest),
            "--workers",
            "1",
            "--mlflow-uri",
            uri,
            "--mlflow-artifacts",
            "s3://mlflow-artifacts/faceveil",
            "--json",
            "--quiet",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    logged = json.loads(out)["report"]["mlflow"]
    assert logged["experiment"] == "faceveil" and logged["artifacts"].startswith("s3://mlflow-artifacts/faceveil/")
    stored = bucket.fs.ls(logged["artifacts"].removeprefix("s3://"))
    names = {p.rsplit("/", 1)[1] for p in stored}
    assert {"report.html", "report.json"} <= names and any(n.endswith(".png") for n in names), names
    report = json.loads(bucket.fs.cat(f"{logged['artifacts'].removeprefix('s3://')}/report.json"))
    assert report["run_id"] == json.loads(out)["run_id"] and report["mlflow"]["run_id"] == logged["run_id"]
    from mlflow import MlflowClient

    local = MlflowClient(tracking_uri=uri).download_artifacts(logged["run_id"], "report.html", str(tmp_path))
    assert b"<html" in Path(local).read_bytes()[:200].lower()
    assert not (private(dest) / "mlflow").exists()  # the store is the one named, its artifacts on S3
    # the same store, another root: a second experiment, never the first one's bucket
    _, exp_id, name = open_store(uri, "s3://mlflow-artifacts/other")
    assert name == "faceveil (s3://mlflow-artifacts/other)"
    assert MlflowClient(tracking_uri=uri).get_experiment(exp_id).artifact_location == "s3://mlflow-artifacts/other"
    assert open_store(uri, "s3://mlflow-artifacts/faceveil")[2] == "faceveil"
