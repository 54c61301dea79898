"""Associative re-identification on real flow outputs: identity templates in LanceDB, search by one
new photo, restore only that person, sealed templates, the access log."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from faceveil.config import AnonymizeConfig
from faceveil.flows.launch import run_anonymize
from faceveil.storage.control import ControlFileError
from faceveil.storage.keys import MasterKey, VaultLock, encode_key
from faceveil.models.detectors import DetectorSettings, create_detector
from faceveil.storage.media import iter_frames, probe_video, read_image
from faceveil.storage.paths import Location
from faceveil.ops.search import ProbeError, probe_vector, search_tracks

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from private import private  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.shared_data]  # flows over ../shared/data

ELON = "dlib_elon_musk_smoke.mp4"
OTHERS = ("intel_asl_again.mp4", "intel_head_pose_female.mp4")


def _held_back(shared):
    """identity -> (probe photo, archive photos): the first photo of each identity is held back."""
    out = {}
    for person in sorted(p for p in (shared / "faces").iterdir() if p.is_dir()):
        photos = sorted(person.glob("*.jpg"))
        out[person.name] = (photos[0], photos[1:])
    return out


@pytest.fixture(scope="module")
def key():
    return MasterKey.generate()


@pytest.fixture(scope="module")
def faces_archive(shared, key, tmp_path_factory, prefect_server):
    src = tmp_path_factory.mktemp("reid_src")
    held = _held_back(shared)
    for person, (_, photos) in held.items():
        (src / person).mkdir()
        for p in photos:
            shutil.copy(p, src / person / p.name)
    dest = tmp_path_factory.mktemp("reid_dest")
    summary = run_anonymize(
        AnonymizeConfig.of(src=str(src), dest=str(dest), workers=2, reversible=True, vault_lock=VaultLock.of(key)), key
    )
    assert summary["failed"] == 0
    # the operator calibrates on labelled photos they hold: here the archive's own (never the probes)
    r = _cli(
        "calibrate", str(dest), "--labelled", str(src), "--target-fmr", "0.01", env={"FACEVEIL_KEY": encode_key(key)}
    )
    assert r.returncode == 0 and "threshold" in r.stdout, r.stderr
    from faceveil.storage.identity_index import IdentityIndex

    # templates and the calibration both embed faces averaged with their mirror image, as probes are
    assert IdentityIndex(Location(str(private(dest)))).meta()["template_view"] == "mirror-mean"
    return dest, held


def test_probe_finds_the_person_and_nobody_else(faces_archive, key, figures):
    dest, held = faces_archive
    loc = Location(str(private(dest)))
    hits = false = 0
    for person, (probe, _) in held.items():
        v, _ = probe_vector(str(probe), "dlib-resnet")
        matches, cut = search_tracks(loc, key, v, top=50)
        hits += bool(matches) and matches[0].rel_path.split("/")[0] == person
        # the same probe with this person left out of the archive: any match is a false match
        false += any(m.rel_path.split("/")[0] != person for m in matches)
    n = len(held)
    figures.append(
        f"re-identification on faces/ ({n} identities, one held-back probe each, threshold {cut:.3f} "
        f"calibrated on the archive's photos): "
        f"top-1 accuracy {hits / n:.3f} (target >= 0.95); false-match rate with the person left out "
        f"{false / n:.3f} (target <= 0.01)"
    )
    assert hits / n >= 0.95
    assert false / n <= 0.01


def test_stolen_index_is_useless_against_plain_embeddings(faces_archive, figures):
    import lancedb

    dest, held = faces_archive
    db = lancedb.connect(str(private(dest) / "index"))
    rows = db.open_table("templates").to_arrow().to_pandas()
    rows = rows[rows.kind == "template"]
    stored = np.stack(rows.vector.to_numpy()).astype(np.float32)
    owners = rows.rel_path.str.split("/").str[0].to_numpy()
    hits = 0
    for person, (probe, _) in held.items():
        v, _ = probe_vector(str(probe), "dlib-resnet")  # a public model's plain embedding
        hits += owners[int(np.argmax(stored @ v))] == person
    chance = 1 / len(held)
    figures.append(
        f"stolen index: plain probe embeddings against the stored (protected) templates: "
        f"top-1 {hits / len(held):.3f} (chance {chance:.3f}; with the key: see above)"
    )
    assert hits / len(held) <= 3 * chance


def test_probe_errors_unknown_person_and_wrong_key(faces_archive, key, tmp_path):
    from skimage import data
    from PIL import Image

    dest, _ = faces_archive
    blank = tmp_path / "wall.png"
    Image.fromarray(np.full((200, 300, 3), 128, np.uint8)).save(blank)
    with pytest.raises(ProbeError, match="no face"):
        probe_vector(str(blank), "dlib-resnet")
    two = tmp_path / "two.png"
    face = data.astronaut()
    Image.fromarray(np.concatenate([face, face[:, ::-1]], 1)).save(two)
    with pytest.raises(ProbeError, match="2 faces.*--face"):
        probe_vector(str(two), "dlib-resnet")
    v, _ = probe_vector(str(two), "dlib-resnet", face=1)
    stranger = tmp_path / "astronaut.png"
    Image.fromarray(face).save(stranger)
    v, _ = probe_vector(str(stranger), "dlib-resnet")
    assert search_tracks(Location(str(private(dest))), key, v)[0] == []  # not in the archive: no match, no guess
    r = _cli(
        "search",
        str(dest),
        "--probe",
        str(stranger),
        "--reason",
        "test",
        env={"FACEVEIL_KEY": encode_key(MasterKey.generate())},
    )
    assert r.returncode == 2 and "wrong key" in r.stderr


def _cli(*args, env=None):
    return subprocess.run(
        [sys.executable, "-m", "faceveil.cli", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=600,
    )


@pytest.fixture(scope="module")
def video_archive(shared, key, tmp_path_factory, prefect_server):
    src = tmp_path_factory.mktemp("reid_video_src")
    for name in (ELON, *OTHERS):
        shutil.copy(shared / "video" / name, src / name)
    dest = tmp_path_factory.mktemp("reid_video_dest")
    summary = run_anonymize(
        AnonymizeConfig.of(
            src=str(src), dest=str(dest), workers=2, reversible=True, lossless=True, vault_lock=VaultLock.of(key)
        ),
        key,
    )
    assert summary["failed"] == 0
    return src, dest


def _frames(path):
    return dict(iter_frames(str(path), probe_video(str(path))))


def test_video_search_and_restore_only_that_person(shared, video_archive, key, tmp_path):
    src, dest = video_archive
    env = {"FACEVEIL_KEY": encode_key(key), "FACEVEIL_ACTOR": "dpo@example"}
    probe = str(shared / "faces" / "elon" / "1.jpg")
    r = _cli(
        "search",
        str(dest),
        "--probe",
        probe,
        "--reason",
        "case 42",
        "--json",
        "--thumbnails",
        str(tmp_path / "thumbs"),
        env=env,
    )
    assert r.returncode == 0, r.stderr
    found = json.loads(r.stdout)["matches"]
    assert found and found[0]["rel_path"] == ELON
    thumb = read_image(found[0]["thumbnail"])[0]
    assert (
        thumb.shape[0] > 20
        and create_detector("centerface", DetectorSettings(threshold=0.5)).detect(thumb).scores.size == 0
    )
    out = tmp_path / "restored"
    r = _cli("restore", str(dest), str(out), "--probe", probe, "--reason", "case 42", "--workers", "1", env=env)
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in out.iterdir()) == [ELON + ".mkv"]  # nobody else's media, nothing else
    media = pq.read_table(private(dest) / "media").to_pandas().set_index("rel_path")
    entries = pq.read_table(private(dest) / f"vault/entries/{media.loc[ELON].media_id}.parquet").to_pandas()
    chosen = {m["track_id"] for m in found if m["rel_path"] == ELON}
    original, anon, restored = _frames(src / ELON), _frames(dest / (ELON + ".mkv")), _frames(out / (ELON + ".mkv"))
    n_in = n_out = 0
    for e in entries.itertuples():
        region = np.s_[e.y1 : e.y2, e.x1 : e.x2]
        others = entries[
            (entries.frame_index == e.frame_index)
            & (entries.track_id != e.track_id)
            & (entries.x1 < e.x2)
            & (entries.x2 > e.x1)
            & (entries.y1 < e.y2)
            & (entries.y2 > e.y1)
        ]
        if len(others):
            continue  # overlapping faces: checked by the restore tests
        if e.track_id in chosen:
            assert np.array_equal(restored[e.frame_index][region], original[e.frame_index][region])
            n_in += 1
        else:
            assert np.array_equal(restored[e.frame_index][region], anon[e.frame_index][region])
            n_out += 1
    assert n_in > 10, (n_in, len(entries), sorted(entries.track_id.unique()), chosen)
    # every search and restore is in the access log; an edited row is detected
    r = _cli("access-log", str(dest), "--verify", env=env)
    assert r.returncode == 0 and "intact" in r.stdout and "case 42" in r.stdout, r.stdout + r.stderr
    log = sorted((private(dest) / "access_log").glob("*.parquet"))
    assert len(log) == 4  # search and restore: an intent row each, then its outcome
    t = pq.read_table(log[1])
    assert t.column("actor")[0].as_py() == "dpo@example" and t.column("matched")[0].as_py()
    pq.write_table(
        t.set_column(t.schema.get_field_index("reason"), "reason", __import__("pyarrow").array(["nothing to see"])),
        log[1],
    )
    r = _cli("access-log", str(dest), "--verify", env=env)
    assert r.returncode == 1 and "TAMPERED" in r.stderr


def test_key_rotation_reprojects_the_index(faces_archive, key, tmp_path):
    from faceveil.storage.vault import rotate_key
    from faceveil.ops.reproject import reproject_index

    dest, held = faces_archive
    archive = tmp_path / "archive"
    shutil.copytree(dest, archive)
    shutil.copytree(private(dest), private(archive))
    new = MasterKey.generate()
    rotate_key(Location(str(private(archive))), key, new)
    assert reproject_index(Location(str(private(archive))), key, new) > 20
    person, (probe, _) = next(iter(held.items()))
    v, _ = probe_vector(str(probe), "dlib-resnet")
    matches, _ = search_tracks(Location(str(private(archive))), new, v)
    assert matches and matches[0].rel_path.split("/")[0] == person  # the new key finds the person
    with pytest.raises(ControlFileError):  # the old key: refused (the index's meta.json is the new key's now)
        search_tracks(Location(str(private(archive))), key, v)
