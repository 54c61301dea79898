"""Keyed, reversible anonymization on real flow outputs: vault, exact restore, scramble, forget,
wrong key, tampering, missing vault, passphrase keys, no key material anywhere."""

import base64
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from faceveil.config import AnonymizeConfig
from faceveil.flows.launch import run_anonymize
from faceveil.flows.restore import run_restore
from faceveil.storage.control import ControlFileError
from faceveil.storage.keys import BadKeyError, MasterKey, VaultLock, encode_key
from faceveil.storage.media import iter_frames, probe_video, read_image
from faceveil.storage.paths import Location
from faceveil.ops.forget import forget
from faceveil.tasks.restore_media import RestoreConfig

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from private import private  # noqa: E402

pytestmark = pytest.mark.slow  # end to end: Prefect flows on a Dask cluster, the CLI with its own server

VIDEO = "cameras/lobby/clip_001.mp4"
IMAGES = ("photos/grace_hopper.png", "photos/camera.webp")


@pytest.fixture(scope="module")
def clean_archive(sample_archive, tmp_path_factory):
    root = tmp_path_factory.mktemp("rev_src")
    for rel in (VIDEO, *IMAGES):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(sample_archive / rel, root / rel)
    return root


@pytest.fixture(scope="module")
def master():
    return MasterKey.generate()


def _anonymize(src, dest, master, **kw):
    summary = run_anonymize(
        AnonymizeConfig.of(
            src=str(src), dest=str(dest), workers=2, reversible=True, vault_lock=VaultLock.of(master), **kw
        ),
        master,
    )
    assert summary["failed"] == 0, summary["failures"]
    return summary


@pytest.fixture(scope="module")
def lossless_run(clean_archive, master, tmp_path_factory, prefect_server):
    dest = tmp_path_factory.mktemp("rev_lossless")
    _anonymize(clean_archive, dest, master, lossless=True)
    return dest


@pytest.fixture(scope="module")
def lossy_run(clean_archive, master, tmp_path_factory, prefect_server):
    dest = tmp_path_factory.mktemp("rev_lossy")
    _anonymize(clean_archive, dest, master)
    return dest


def _frames(path):
    info = probe_video(str(path))
    return dict(iter_frames(str(path), info))


def _media(dest):
    return pq.read_table(private(dest) / "media").to_pandas().set_index("rel_path")


def _entries(dest, media_id):
    return pq.read_table(private(dest) / f"vault/entries/{media_id}.parquet").to_pandas()


def test_vault_has_a_region_for_every_face_frame_and_no_key(lossless_run, master):
    media = _media(lossless_run)
    det = pq.read_table(private(lossless_run) / "detections").to_pandas()
    for rel, row in media.iterrows():
        e = _entries(lossless_run, row.media_id)
        assert len(e) == (det.media_id == row.media_id).sum() == row.vault_entries > 0, rel
        assert row.key_fingerprint == master.fingerprint
    raw, text = master._b, encode_key(master).split(":", 1)[1]
    for f in [*lossless_run.rglob("*"), *private(lossless_run).rglob("*")]:  # DEST and its state root
        if f.is_file():
            data = f.read_bytes()
            assert raw not in data and text.encode() not in data and raw.hex().encode() not in data, f


def test_round_trip_is_bit_exact_on_lossless_video_and_images(clean_archive, lossless_run, master, tmp_path):
    out = tmp_path / "restored"
    report = run_restore(RestoreConfig.of(str(lossless_run), str(out), all=True, workers=2), master)
    assert report["ok"] == 3 and report["failed"] == report["partial"] == 0, report
    original, anonymized, restored = (
        _frames(clean_archive / VIDEO),
        _frames(lossless_run / (VIDEO + ".mkv")),
        _frames(out / (VIDEO + ".mkv")),
    )
    assert len(original) == len(restored) == len(anonymized)
    changed = sum(not np.array_equal(original[i], anonymized[i]) for i in original)
    assert changed > 0.8 * len(original)  # faces really were anonymized ...
    for i in original:  # ... and every pixel of every frame is back
        assert np.array_equal(original[i], restored[i]), f"frame {i}"
    for rel in IMAGES:
        a, _ = read_image(str(clean_archive / rel))
        b, _ = read_image(str(out / rel))
        assert not np.array_equal(a, read_image(str(lossless_run / rel))[0])
        assert np.array_equal(a, b), rel


def test_lossy_restore_psnr_on_face_regions(clean_archive, lossy_run, master, tmp_path, figures):
    out = tmp_path / "restored"
    run_restore(RestoreConfig.of(str(lossy_run), str(out), media=[VIDEO], workers=1), master)
    original, restored = _frames(clean_archive / VIDEO), _frames(out / VIDEO)
    e = _entries(lossy_run, _media(lossy_run).loc[VIDEO].media_id)
    se = n = 0
    for r in e.itertuples():
        a = original[r.frame_index][r.y1 : r.y2, r.x1 : r.x2].astype(np.float64)
        b = restored[r.frame_index][r.y1 : r.y2, r.x1 : r.x2].astype(np.float64)
        se += ((a - b) ** 2).sum()
        n += a.size
    psnr = 10 * np.log10(255**2 / (se / n))
    figures.append(
        f"reversible, lossy H.264 archive (crf 18), restored at crf 10: face regions PSNR {psnr:.1f} dB "
        f"against the decoded input over {len(e)} face-frames (target >= 40)"
    )
    assert psnr >= 40


def test_wrong_key_is_refused_before_anything_is_written(lossy_run, clean_archive, tmp_path):
    out = tmp_path / "never"
    with pytest.raises(BadKeyError, match="wrong key"):
        run_restore(RestoreConfig(str(lossy_run), str(out), all=True), MasterKey.generate())
    assert not out.exists()
    files = lambda: [p for d in (lossy_run, private(lossy_run)) for p in d.rglob("*") if p.is_file()]  # noqa: E731
    before = sorted(p.stat().st_mtime_ns for p in files())
    other = MasterKey.generate()
    with pytest.raises(BadKeyError, match="wrong key"):
        run_anonymize(
            AnonymizeConfig.of(
                src=str(clean_archive),
                dest=str(lossy_run),
                reversible=True,
                vault_lock=VaultLock.of(other),
                method="blur",
            ),
            other,
        )
    assert sorted(p.stat().st_mtime_ns for p in files()) == before


def _copy(run, tmp_path):
    """A copy of an archive: its public tree and its private state root."""
    dst = tmp_path / "archive"
    shutil.copytree(run, dst)
    shutil.copytree(private(run), private(dst))
    return dst


def _state(archive) -> Location:
    return Location(str(private(archive)))


def test_tampered_row_is_reported_and_the_rest_restores(lossless_run, master, tmp_path):
    archive = _copy(lossless_run, tmp_path)
    mid = _media(archive).loc[VIDEO].media_id
    part = private(archive) / f"vault/entries/{mid}.parquet"
    t = pq.read_table(part)
    sealed = t.column("sealed").to_pylist()
    sealed[5] = sealed[5][:-1] + bytes([sealed[5][-1] ^ 1])  # one flipped bit
    victim = t.slice(5, 1).to_pylist()[0]
    pq.write_table(t.set_column(t.schema.get_field_index("sealed"), "sealed", pa.array(sealed, pa.binary())), part)
    out = tmp_path / "restored"
    report = run_restore(RestoreConfig.of(str(archive), str(out), media=[VIDEO], workers=1), master)
    m = report["media"][0]
    assert m["status"] == "partial" and len(m["refused_regions"]) == 1
    assert f"frame {victim['frame_index']} track {victim['track_id']}" in m["refused_regions"][0]
    assert m["regions_restored"] == len(sealed) - 1
    anon, restored = _frames(archive / (VIDEO + ".mkv")), _frames(out / (VIDEO + ".mkv"))
    y1, y2, x1, x2 = victim["y1"], victim["y2"], victim["x1"], victim["x2"]
    assert np.array_equal(restored[victim["frame_index"]][y1:y2, x1:x2], anon[victim["frame_index"]][y1:y2, x1:x2])


def test_forgotten_track_stays_anonymized_and_the_rest_restores(clean_archive, lossless_run, master, tmp_path):
    archive = _copy(lossless_run, tmp_path)
    mid = _media(archive).loc[VIDEO].media_id
    e = _entries(archive, mid)
    tracks = sorted(e.track_id.unique())
    assert len(tracks) >= 2, "the sample clip has two people"
    gone = int(tracks[0])
    assert forget(_state(archive), master, [f"{VIDEO}:{gone}"]) == {VIDEO: [gone]}
    with pytest.raises(BadKeyError):
        forget(_state(archive), MasterKey.generate(), [f"{VIDEO}:{tracks[1]}"])
    out = tmp_path / "restored"
    report = run_restore(RestoreConfig.of(str(archive), str(out), all=True, workers=2), master)
    m = next(x for x in report["media"] if x["path"] == VIDEO + ".mkv")
    assert m["forgotten_tracks"] == [gone] and gone not in m["tracks"]
    original, anon, restored = (
        _frames(clean_archive / VIDEO),
        _frames(archive / (VIDEO + ".mkv")),
        _frames(out / (VIDEO + ".mkv")),
    )
    others = e[e.track_id != gone]
    for r in e[e.track_id == gone].itertuples():
        region = np.s_[r.y1 : r.y2, r.x1 : r.x2]
        overlap = others[
            (others.frame_index == r.frame_index)
            & (others.x1 < r.x2)
            & (others.x2 > r.x1)
            & (others.y1 < r.y2)
            & (others.y2 > r.y1)
        ]
        if overlap.empty:  # (where another, restored, face overlaps it, that face wins)
            assert np.array_equal(restored[r.frame_index][region], anon[r.frame_index][region])
    for r in others.itertuples():
        region = np.s_[r.y1 : r.y2, r.x1 : r.x2]
        if not ((e.track_id == gone) & (e.frame_index == r.frame_index)).any():
            assert np.array_equal(restored[r.frame_index][region], original[r.frame_index][region])
    with pytest.raises(ValueError, match="no anonymized media"):
        forget(_state(archive), master, ["nope.mp4:1"])


def test_missing_vault_and_non_reversible_archive(lossy_run, master, tmp_path, sample_archive, prefect_server):
    archive = _copy(lossy_run, tmp_path)
    mid = _media(archive).loc[VIDEO].media_id
    (private(archive) / f"vault/entries/{mid}.parquet").unlink()
    report = run_restore(RestoreConfig.of(str(archive), str(tmp_path / "out"), all=True, workers=1), master)
    m = next(x for x in report["media"] if x["path"] == VIDEO)
    assert m["status"] == "failed" and "vault entries missing" in m["reason"] and mid in m["reason"]
    assert report["ok"] == 2  # the images still restore
    shutil.rmtree(private(archive) / "vault")
    with pytest.raises(BadKeyError, match="no vault here"):
        run_restore(RestoreConfig(str(archive), str(tmp_path / "out2"), all=True), master)


def _cli(*args, env=None):
    return subprocess.run(
        [sys.executable, "-m", "faceveil.cli", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=600,
    )


def test_cli_keygen_passphrase_and_no_key_in_output(clean_archive, tmp_path, prefect_server):
    key = tmp_path / "k.key"
    r = _cli("keygen", str(key))
    assert r.returncode == 0 and oct(key.stat().st_mode & 0o777) == "0o600"
    assert _cli("keygen", str(key)).returncode == 2  # never overwrites a key
    secret = key.read_text().strip()
    src = tmp_path / "src"
    (src / "photos").mkdir(parents=True)
    shutil.copy(clean_archive / IMAGES[0], src / IMAGES[0])
    env = {"FACEVEIL_PASSPHRASE": "correct horse battery staple"}
    r1 = _cli(
        "anonymize",
        str(src),
        str(tmp_path / "dest"),
        "--reversible",
        "--passphrase",
        "--quiet",
        "--workers",
        "1",
        env=env,
    )
    assert r1.returncode == 0, r1.stderr
    bad = _cli(
        "restore",
        str(tmp_path / "dest"),
        str(tmp_path / "bad"),
        "--all",
        "--passphrase",
        env={"FACEVEIL_PASSPHRASE": "wrong"},
    )
    assert bad.returncode == 2 and "wrong key" in bad.stderr and not (tmp_path / "bad").exists()
    r2 = _cli("restore", str(tmp_path / "dest"), str(tmp_path / "out"), "--all", "--passphrase", "--json", env=env)
    assert r2.returncode == 0, r2.stderr
    a, _ = read_image(str(src / IMAGES[0]))
    b, _ = read_image(str(tmp_path / "out" / IMAGES[0]))
    assert np.array_equal(a, b)
    r3 = _cli(
        "anonymize", str(src), str(tmp_path / "dest_k"), "--reversible", "--key", str(key), "--quiet", "--workers", "1"
    )
    assert r3.returncode == 0, r3.stderr
    for r in (r, r1, r2, r3):
        for stream in (r.stdout, r.stderr):
            assert secret.split(":", 1)[1] not in stream and env["FACEVEIL_PASSPHRASE"] not in stream
    folders = ("dest", "dest_k", "out", "dest.faceveil-private", "dest_k.faceveil-private")
    files = [p.read_bytes() for d in folders for p in (tmp_path / d).rglob("*") if p.is_file()]
    raw = base64.urlsafe_b64decode(secret.split(":", 1)[1])
    assert not any(raw in f or env["FACEVEIL_PASSPHRASE"].encode() in f for f in files)


def test_key_rotation_rewraps_and_the_old_key_no_longer_opens(lossless_run, master, tmp_path):
    from faceveil.storage.vault import rotate_key

    archive = _copy(lossless_run, tmp_path)
    new = MasterKey.generate()
    with pytest.raises(BadKeyError):
        rotate_key(_state(archive), MasterKey.generate(), new)
    assert rotate_key(_state(archive), master, new) >= 3
    with pytest.raises(BadKeyError, match="wrong key"):
        run_restore(RestoreConfig(str(archive), str(tmp_path / "old"), all=True), master)
    report = run_restore(RestoreConfig.of(str(archive), str(tmp_path / "new"), media=list(IMAGES), workers=1), new)
    assert report["ok"] == 2


def test_vault_parts_moved_from_another_archive_do_not_open(lossless_run, lossy_run, master, tmp_path):
    """Two archives of the same media under one key: the vault of one, copied into the other, is
    refused there (sealed regions and wrapped keys are bound to their archive's id)."""
    from faceveil.storage.vault import archive_id

    archive = _copy(lossless_run, tmp_path)
    a, b = archive_id(_state(archive)), archive_id(_state(lossy_run))
    assert a and b and a != b
    mid = _media(archive).loc[VIDEO].media_id
    assert _media(lossy_run).loc[VIDEO].media_id == mid
    for part in ("entries", "keys"):
        shutil.copy(
            private(lossy_run) / f"vault/{part}/{mid}.parquet", private(archive) / f"vault/{part}/{mid}.parquet"
        )
    out = tmp_path / "restored"
    with pytest.raises(ControlFileError, match="not the key part its seal names"):  # its seal names this archive's part
        run_restore(RestoreConfig.of(str(archive), str(out), media=[VIDEO], workers=1), master)
    shutil.copy(private(lossy_run) / f"vault/seals/{mid}.json", private(archive) / f"vault/seals/{mid}.json")
    with pytest.raises(ControlFileError, match="another archive"):  # its seal too: bound to the other archive
        run_restore(RestoreConfig.of(str(archive), str(out), media=[VIDEO], workers=1), master)
    assert not out.exists()
    # this archive's keys back, the other's sealed regions stay: refused region by region, nothing pasted
    for part in ("keys/{}.parquet", "seals/{}.json"):
        shutil.copy(private(lossless_run) / "vault" / part.format(mid), private(archive) / "vault" / part.format(mid))
    report = run_restore(RestoreConfig.of(str(archive), str(out), media=[VIDEO], workers=1), master)
    m = report["media"][0]
    assert m["regions_restored"] == 0 and m["refused_regions"], m
