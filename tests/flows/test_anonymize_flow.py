"""End to end: the real Prefect flow on a real Dask cluster over real video files with audio."""

import os
import signal
import subprocess
import sys
from pathlib import Path
import time

import shutil
from dataclasses import replace

import pyarrow.parquet as pq
import pytest

from faceveil.config import AnonymizeConfig
from faceveil.flows.launch import run_anonymize
from faceveil.models.detectors import DetectorSettings, create_detector
from faceveil.storage.media import iter_frames, probe_video

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from private import private  # noqa: E402

pytestmark = pytest.mark.slow  # end to end: Prefect flows on a Dask cluster, the CLI with its own server

GOOD = {
    "cameras/lobby/clip_001.mp4",
    "cameras/parking/clip_002.mkv",
    "photos/astronaut.jpg",
    "photos/grace_hopper.png",
    "photos/camera.webp",
}
# each bad file's reason starts with the text storage/media.py gives it (what follows in brackets is
# the decoder's own message). The sample's mp4 keeps its moov atom at the end, so the truncated copy
# (its first third) has no header at all, and the garbage JPEG has a valid marker and nothing after.
BAD = {
    "bad/empty.mp4": "empty file",
    "bad/text.mp4": "not a readable media file or corrupt header (",
    "bad/truncated.mp4": "not a readable media file or corrupt header (",
    "bad/garbage.jpg": "corrupt or truncated image (",
}


def _media(dest):
    return pq.read_table(private(dest) / "media").to_pandas().set_index("rel_path")


def _faces(path, threshold=0.5, every=2):
    det = create_detector("centerface", DetectorSettings(threshold=threshold))
    info = probe_video(str(path))
    return sum(len(det.detect(rgb)) for i, rgb in iter_frames(str(path), info) if i % every == 0)


@pytest.fixture(scope="module")
def first_run(sample_archive, tmp_path_factory, prefect_server):
    dest = tmp_path_factory.mktemp("dest")
    summary = run_anonymize(AnonymizeConfig.of(src=str(sample_archive), dest=str(dest), workers=2))
    return dest, summary


def test_summary_counts_and_reasons(first_run):
    dest, summary = first_run
    assert summary["ok"] == len(GOOD) and summary["failed"] == len(BAD) and summary["status"] == "failed"
    assert {f["path"] for f in summary["failures"]} == set(BAD)
    for f in summary["failures"]:
        assert f["reason"].startswith(BAD[f["path"]]), f
    assert summary["not_media"] == [{"path": "bad/README.txt", "reason": "not a supported media type (.txt)"}]
    media = _media(dest)
    assert media.index.is_unique and set(media.index) == GOOD | set(BAD)
    assert not any((dest / p).exists() for p in BAD)  # nothing written for bad input


def test_video_stays_video(first_run, sample_archive):
    dest, _ = first_run
    media = _media(dest)
    for rel in ("cameras/lobby/clip_001.mp4", "cameras/parking/clip_002.mkv"):
        src, out = probe_video(str(sample_archive / rel)), probe_video(str(dest / rel))
        assert out.n_frames == src.n_frames == media.loc[rel, "frames_out"]
        assert out.duration_s == pytest.approx(src.duration_s, abs=1 / src.fps)
        assert (out.width, out.height, out.rotation) == (src.width, src.height, src.rotation)
        audio_in = [s for s in src.streams if s.type == "audio"]
        audio_out = [s for s in out.streams if s.type == "audio"]
        assert len(audio_out) == len(audio_in) == 1
        assert audio_out[0].duration_s == pytest.approx(audio_in[0].duration_s, abs=0.03)
        assert media.loc[rel, "has_audio_out"]
        assert len(media.loc[rel, "input_sha256"]) == 64 and len(media.loc[rel, "output_sha256"]) == 64


def test_faces_are_gone(first_run, sample_archive):
    dest, _ = first_run
    for rel in ("cameras/lobby/clip_001.mp4", "cameras/parking/clip_002.mkv"):
        before, after = _faces(sample_archive / rel), _faces(dest / rel)
        assert before >= 20 and after <= 0.01 * before, (rel, before, after)


def test_detection_manifest(first_run):
    dest, _ = first_run
    det = pq.read_table(private(dest) / "detections").to_pandas()
    media = _media(dest).reset_index().set_index("media_id")
    det = det.join(media[["width", "height", "rel_path"]], on="media_id")
    assert (det.x1 >= 0).all() and (det.y1 >= 0).all()
    assert (det.x2 <= det.width).all() and (det.y2 <= det.height).all()
    assert ((det.score >= 0) & (det.score <= 1)).all()
    video = det[det.rel_path == "cameras/lobby/clip_001.mp4"]
    assert video.filled.any() and (~video.filled).any()  # tracker filled the frames between detections
    assert not video.duplicated(["frame_index", "track_id"]).any()
    tracks = pq.read_table(private(dest) / "tracks").to_pandas()
    assert (tracks.n_detected + tracks.n_filled == tracks.n_frames).all()


def test_second_run_skips_everything_and_duplicates_nothing(first_run, sample_archive):
    dest, first = first_run
    before = {t: pq.read_table(private(dest) / t).num_rows for t in ("media", "detections", "tracks")}
    run_ids = _media(dest).run_id.to_dict()
    again = run_anonymize(AnonymizeConfig.of(src=str(sample_archive), dest=str(dest), workers=2))
    assert again["already_done"] == len(GOOD) and again["ok"] == 0
    assert again["failed"] == len(BAD)  # bad input is looked at again (and fails again) on every run
    after = {t: pq.read_table(private(dest) / t).num_rows for t in ("media", "detections", "tracks")}
    assert after == before
    now = _media(dest).run_id.to_dict()
    assert all(now[r] == run_ids[r] for r in GOOD)  # finished media were not redone
    assert pq.read_table(private(dest) / "runs").num_rows == 2


def test_incremental_by_content_settings_and_weights(sample_archive, tmp_path, prefect_server):
    """A rerun redoes exactly what changed: a touched but equal file is not redone (its content hash
    matches the row), nor a copied archive; a file replaced under the same size and mtime is; other
    settings redo everything."""
    import numpy as np
    from PIL import Image

    from faceveil.pipeline.work_hash import work_hash

    src, dest = tmp_path / "src", tmp_path / "dest"
    (src / "photos").mkdir(parents=True)
    shutil.copy2(sample_archive / "photos/astronaut.jpg", src / "photos/astronaut.jpg")
    hopper = np.asarray(Image.open(sample_archive / "photos/grace_hopper.png").convert("RGB"))
    replaced = src / "photos/grace_hopper.png"
    Image.fromarray(hopper).save(replaced, compress_level=0)  # uncompressed: its size depends on its shape only
    config = AnonymizeConfig.of(src=str(src), dest=str(dest), workers=1)
    assert run_anonymize(config)["ok"] == 2
    os.utime(src / "photos/astronaut.jpg", None)  # a new mtime, the same bytes
    st = replaced.stat()
    Image.fromarray(np.ascontiguousarray(hopper[:, ::-1])).save(replaced, compress_level=0)  # other pixels
    os.utime(replaced, ns=(st.st_atime_ns, st.st_mtime_ns))  # and the old mtime put back
    assert replaced.stat().st_size == st.st_size and replaced.stat().st_mtime_ns == st.st_mtime_ns
    again = run_anonymize(config)
    assert again["ok"] == 1 and again["already_done"] == 1, again
    rows = _media(dest)
    assert set(rows[rows.run_id == again["run_id"]].index) == {"photos/grace_hopper.png"}
    moved = tmp_path / "moved"  # the archive copied elsewhere: new inodes and change times, the same content
    shutil.copytree(src, moved)
    unchanged = run_anonymize(replace(config, src=str(moved)))
    assert unchanged["already_done"] == 2 and unchanged["ok"] == 0
    assert unchanged["report"]["nothing_new"]  # recorded without starting a cluster or a server
    assert pq.read_table(private(dest) / "runs").num_rows == 3
    assert rows.work_hash.nunique() == 1 and rows.work_hash.iloc[0] == work_hash(config)
    stricter = run_anonymize(config.changed(threshold=0.3))
    assert stricter["ok"] == 2 and stricter["already_done"] == 0  # other settings: everything again


def test_existing_dask_scheduler(sample_archive, tmp_path, prefect_server):
    from distributed import LocalCluster

    src = tmp_path / "src"
    (src / "x").mkdir(parents=True)
    (src / "x" / "a.jpg").write_bytes((sample_archive / "photos/astronaut.jpg").read_bytes())
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        summary = run_anonymize(
            AnonymizeConfig.of(src=str(src), dest=str(tmp_path / "out"), dask_address=cluster.scheduler_address)
        )
        workers = list(cluster.scheduler.workers)
    assert summary["ok"] == 1 and workers
    assert (tmp_path / "out" / "x" / "a.jpg").exists()


def test_a_failed_segment_is_reported_with_its_own_error(sample_archive, tmp_path, prefect_server):
    """A segment's task that fails for good (here: made to, on the workers) fails its video only, and
    the media row names that task and its error, not the join that never ran (UnfinishedRun)."""
    from distributed import Client, LocalCluster

    from faceveil.sample import make_sample_archive

    src = tmp_path / "src"
    make_sample_archive(src, seconds=4.0, fps=25, size=(480, 270))

    def break_later_segments():  # runs on each worker: segments after the first raise
        import faceveil.tasks.finish_video as fv

        real = fv.encode_segment_file

        def broken(path, tmp, info, start, stop, *a, **kw):
            if start > 0:
                raise RuntimeError(f"disk on fire at frame {start}")
            return real(path, tmp, info, start, stop, *a, **kw)

        fv.encode_segment_file = broken

    dest = tmp_path / "out"
    with (
        LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None) as cluster,
        Client(cluster) as client,
    ):
        client.run(break_later_segments)
        summary = run_anonymize(
            AnonymizeConfig.of(
                src=str(src), dest=str(dest), dask_address=cluster.scheduler_address, min_chunk_seconds=2.0
            )
        )
    media = _media(dest)
    lobby = media.loc["cameras/lobby/clip_001.mp4"]  # 4 s: two segments, the second broken
    assert lobby.status == "failed", lobby.reason
    assert "anonymize cameras/lobby/clip_001.mp4 [50:100]" in lobby.reason, lobby.reason
    assert "RuntimeError('disk on fire at frame 50')" in lobby.reason and "UnfinishedRun" not in lobby.reason
    assert not (dest / "cameras/lobby/clip_001.mp4").exists()
    assert summary["failed"] == 1 and summary["ok"] == len(media) - 1, summary  # the rest of the archive is fine


def _cli(*args, env=None, **kw):
    env = {**os.environ, **(env or {})}
    env.pop("PREFECT_API_URL", None)  # the CLI starts its own temporary server
    return subprocess.Popen(
        [sys.executable, "-m", "faceveil.cli", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        **kw,
    )


def test_cli_killed_midway_then_resumed(archive_copy, tmp_path):
    dest = tmp_path / "out"
    proc = _cli("anonymize", str(archive_copy), str(dest), "--workers", "1", "--quiet")
    deadline = time.time() + 240
    parts = private(dest) / "media"
    while time.time() < deadline and proc.poll() is None:
        if parts.is_dir() and len(list(parts.glob("*.parquet"))) >= 2:
            break
        time.sleep(0.05)
    killed = proc.poll() is None
    if killed:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    done_before = _media(dest)
    done_before = done_before[done_before.status == "ok"]
    assert killed and len(done_before) < len(GOOD), "the run finished before it could be killed"
    public = {p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file()}
    assert public <= GOOD, public - GOOD  # a crashed run leaves finished outputs in DEST, nothing else
    # never a half-written file under an output name: whatever is there opens whole
    from faceveil.storage.media import read_image

    for rel in GOOD:
        if (dest / rel).exists():
            if rel.endswith((".mp4", ".mkv")):
                src_info = probe_video(str(archive_copy / rel))
                assert probe_video(str(dest / rel)).n_frames == src_info.n_frames
            else:
                read_image(str(dest / rel))
    proc = _cli("anonymize", str(archive_copy), str(dest), "--workers", "2", "--quiet", "--json")
    out, err = proc.communicate(timeout=400)
    assert proc.returncode == 1, err  # the bad files still fail
    media = _media(dest)
    assert set(media[media.status == "ok"].index) == GOOD
    for rel, row in done_before.iterrows():
        assert media.loc[rel, "run_id"] == row.run_id  # not redone
    det = pq.read_table(private(dest) / "detections").to_pandas()
    assert not det.duplicated(["media_id", "frame_index", "track_id", "x1", "y1"]).any()
    for rel in ("cameras/lobby/clip_001.mp4", "cameras/parking/clip_002.mkv"):
        assert probe_video(str(dest / rel)).n_frames == probe_video(str(archive_copy / rel)).n_frames
    assert "bad/text.mp4" in err and "not a readable media file" in err


def test_cli_dry_run_and_usage_errors(archive_copy, tmp_path):
    p = _cli("anonymize", str(archive_copy), str(tmp_path / "o"), "--dry-run")
    out, err = p.communicate(timeout=60)
    assert p.returncode == 0, err
    assert "cameras/lobby/clip_001.mp4: 50 frames" in out and "bad/empty.mp4: empty file" in out
    assert not (tmp_path / "o").exists()
    p = _cli("anonymize", str(tmp_path / "missing"), str(tmp_path / "o"))
    out, err = p.communicate(timeout=60)
    assert p.returncode == 2 and "missing" in err and "does not exist" in err
    p = _cli("anonymize", str(archive_copy), str(tmp_path / "o"), "--method", "smudge", "--dry-run")
    out, err = p.communicate(timeout=60)
    assert p.returncode == 2 and "smudge" in err and "mosaic" in err
