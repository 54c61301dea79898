"""What DEST publishes holds nothing private, and restore, forget and the control files cannot be
turned against the archive (issue 23), end to end through the command line:
- a reversible, indexed anonymize run and a dataset publication: DEST holds only the anonymized media
  (and the dataset's datasheet); no image in DEST, the reports or MLflow shows an input face (every
  face found in every PNG/JPEG there compared with the inputs by the embedder);
- restore into DEST, below it or into the state root is refused with nothing written;
- a forgotten track stays forgotten after a re-run with new settings: search finds nothing, restore
  restores nothing of it, the index holds no row of it;
- a tampered meta.json, keyinfo or vault key part is refused;
- rotate-key interrupted half-way finishes on a second call."""

import base64
import json
import re
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from faceveil.cli import main
from faceveil.storage.keys import MasterKey, write_key_file
from faceveil.storage.media import read_image
from faceveil.storage.paths import Location

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from private import private  # noqa: E402

pytestmark = pytest.mark.slow  # end to end: Prefect flows on a Dask cluster, through the CLI

PHOTOS = ("photos/astronaut.jpg", "photos/grace_hopper.png")
HOPPER = "photos/grace_hopper.png"


def _files(root: Path) -> dict[str, float]:
    """rel path -> mtime of every file below `root` (what "nothing written" compares)."""
    return (
        {p.relative_to(root).as_posix(): p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}
        if root.exists()
        else {}
    )


def _run(capsys, *args) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture(scope="module")
def keyed(sample_archive, tmp_path_factory, prefect_server):
    """A reversible, indexed archive of the sample's two photos; its source, DEST and key file."""
    root = tmp_path_factory.mktemp("keyed")
    src = root / "src"
    for rel in PHOTOS:
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(sample_archive / rel, src / rel)
    key = root / "k.key"
    write_key_file(key, MasterKey.generate())
    assert (
        main(
            ["anonymize", str(src), str(root / "dest"), "--reversible", "--key", str(key), "--workers", "1", "--quiet"]
        )
        == 0
    )
    return src, root / "dest", key


@pytest.fixture
def archive(keyed, tmp_path, monkeypatch):
    """A copy of the keyed archive (its public tree and its state root) for a test that changes it; the
    copy's own FACEVEIL_HOME (copies share the archive id, so they would share its log anchors)."""
    monkeypatch.setenv("FACEVEIL_HOME", str(tmp_path / "home"))
    src, dest, key = keyed
    shutil.copytree(dest, tmp_path / "dest")
    shutil.copytree(private(dest), private(tmp_path / "dest"))
    return src, tmp_path / "dest", key


def _faces(rgb):
    from faceveil.models.detectors import DetectorSettings
    from faceveil.pipeline.toolkit import loaded_detector, loaded_embedder

    dets = loaded_detector("centerface", DetectorSettings(threshold=0.3)).detect(rgb)
    return loaded_embedder("dlib-resnet").embed(rgb, dets) if len(dets) else np.zeros((0, 128), np.float32)


def _images_in(path: Path):
    """Every image a file holds: itself (PNG/JPEG), or each base64 PNG/JPEG embedded in HTML."""
    import cv2

    data = path.read_bytes()
    blobs = (
        [data]
        if data[:4] in (b"\x89PNG", b"\xff\xd8\xff\xe0", b"\xff\xd8\xff\xe1") or data[:3] == b"\xff\xd8\xff"
        else []
    )
    blobs += [base64.b64decode(b) for b in re.findall(rb"data:image/(?:png|jpeg);base64,([A-Za-z0-9+/=]+)", data)]
    for blob in blobs:
        bgr = cv2.imdecode(np.frombuffer(blob, np.uint8), cv2.IMREAD_COLOR)
        if bgr is not None:
            yield bgr[:, :, ::-1].copy()


def test_dest_publishes_only_anonymized_media_and_no_original_face(keyed, sample_archive, tmp_path, capsys):
    from faceveil.models.embedders.dlib_resnet import DlibResNet

    src, dest, _ = keyed
    assert sorted(_files(dest)) == sorted(PHOTOS)  # the anonymized photos, nothing else
    state = private(dest)
    assert {"vault/keyinfo.json", "summary.json"} <= set(_files(state))
    assert any(r.startswith("index/") for r in _files(state)) and any(
        r.startswith("vault/seals/") for r in _files(state)
    )
    code, out, _ = _run(capsys, "publish", src, tmp_path / "pub", "--workers", "1", "--seed", "0")
    assert code == 0, out
    assert sorted(_files(tmp_path / "pub")) == sorted(
        [*PHOTOS, "datasheet-faces.png", "datasheet.html", "datasheet.md"]
    )
    originals = np.concatenate([_faces(read_image(str(src / rel))[0]) for rel in PHOTOS])
    assert len(originals) >= 2
    scanned = [
        p
        for root in (dest, tmp_path / "pub", private(dest), private(tmp_path / "pub"))
        for p in root.rglob("*")
        if p.is_file() and p.suffix.lower() in (".png", ".jpg", ".jpeg", ".html", ".webp")
    ]
    assert any(p.name == "datasheet.html" for p in scanned) and any(p.parent.name == "reports" for p in scanned)
    images = worst = 0
    for p in scanned:
        for rgb in _images_in(p):
            images += 1
            found = _faces(rgb)
            if len(found):
                best = float((found @ originals.T).max())
                worst = max(worst, best)
                assert best < DlibResNet.same_person_threshold, f"{p}: a face as close as {best:.3f} to an input face"
    assert images >= 6, images  # the photos, the datasheet's contact sheet, the reports' thumbnails and plots
    control = _faces(read_image(str(sample_archive / HOPPER))[0])  # the scan does find an input face
    assert float((control @ originals.T).max()) >= DlibResNet.same_person_threshold
    print(
        f"scanned {images} images in {len(scanned)} files: closest face to an input {worst:.3f} "
        f"(same person at >= {DlibResNet.same_person_threshold})"
    )


def test_restore_into_dest_or_the_state_root_is_refused(keyed, tmp_path, capsys):
    _, dest, key = keyed
    before = {root: _files(root) for root in (dest, private(dest))}
    for out in (dest, dest / "sub", private(dest), private(dest) / "x"):
        code, _, err = _run(capsys, "restore", dest, out, "--all", "--key", key, "--reason", "test")
        assert code == 2 and "overlaps" in err and "nothing was written" in err, err
    assert {root: _files(root) for root in (dest, private(dest))} == before  # not even an access-log row
    assert not (dest / "sub").exists() and not (private(dest) / "x").exists()


def test_a_forgotten_track_stays_forgotten_after_a_rerun(archive, tmp_path, capsys):
    from faceveil.storage.identity_index import IdentityIndex

    src, dest, key = archive
    code, out, _ = _run(capsys, "search", dest, "--probe", src / HOPPER, "--reason", "case 7", "--json", "--key", key)
    assert code == 0 and json.loads(out)["matches"], out
    ref = json.loads(out)["matches"][0]["ref"]
    code, out, err = _run(capsys, "forget", dest, "--track", ref, "--reason", "erasure request", "--key", key)
    assert code == 0, err
    index = IdentityIndex(Location(str(private(dest))))
    mid, track = ref.rsplit(":", 1)
    assert not [r for r in index.rows().to_pylist() if r["media_id"] == mid and r["track_id"] == int(track)]
    versions = index._open().list_versions()
    assert len(versions) == 1, versions  # older versions (which held the rows) cleaned up
    # a re-run with other settings redoes the photo: the forgotten face is found again, never sealed again
    code, out, err = _run(
        capsys,
        "anonymize",
        src,
        dest,
        "--reversible",
        "--key",
        key,
        "--workers",
        "1",
        "--quiet",
        "--pad",
        "0.5",
        "--json",
    )
    assert code == 0, err
    summary = json.loads(out)
    assert summary["ok"] == 2 and summary["already_done"] == 0
    code, out, _ = _run(
        capsys, "search", dest, "--probe", src / HOPPER, "--reason", "case 7 again", "--json", "--key", key
    )
    assert code == 0 and json.loads(out)["matches"] == [], out
    restored = tmp_path / "restored"
    code, out, err = _run(
        capsys, "restore", dest, restored, "--all", "--key", key, "--reason", "audit", "--workers", "1"
    )
    assert code == 0, err
    a, anon, back = (read_image(str(p / HOPPER))[0] for p in (src, dest, restored))
    assert np.array_equal(back, anon) and not np.array_equal(back, a)  # nothing of her restored
    other = [read_image(str(p / PHOTOS[0]))[0].astype(float) for p in (src, dest, restored)]  # the rest is (JPEG)
    assert np.abs(other[2] - other[0]).mean() < 0.3 * np.abs(other[1] - other[0]).mean()


def test_tampered_control_files_are_refused(archive, capsys):
    src, dest, key = archive
    state = private(dest)
    meta = state / "index/meta.json"
    good = meta.read_text()
    meta.write_text(json.dumps({**json.loads(good), "threshold": 0.1}))  # a planted threshold matches anyone
    code, _, err = _run(capsys, "search", dest, "--probe", src / HOPPER, "--reason", "x", "--key", key)
    assert code == 2 and "meta.json" in err and "MAC mismatch" in err, err
    meta.write_text(good)
    info = state / "vault/keyinfo.json"
    good = info.read_text()
    info.write_text(json.dumps({**json.loads(good), "kdf": None, "public_key": "00" * 32}))
    code, _, err = _run(capsys, "restore", dest, dest.parent / "out1", "--all", "--key", key, "--reason", "x")
    assert code == 2 and "keyinfo.json" in err and "MAC mismatch" in err, err
    info.write_text(good)
    part = next((state / "vault/keys").glob("*.parquet"))
    part.write_bytes(part.read_bytes() + b"\x00")  # any change: the seal names the part's digest
    code, _, err = _run(capsys, "restore", dest, dest.parent / "out2", "--all", "--key", key, "--reason", "x")
    assert code != 0 and "seal" in err, err
    assert not (dest.parent / "out1").exists()


def test_rotate_key_interrupted_half_way_finishes_on_a_second_call(archive, tmp_path, capsys, monkeypatch):
    from faceveil.storage import manifests
    from faceveil.storage.keys import load_key
    from faceveil.storage.vault import rotate_key

    _, dest, key = archive
    new = tmp_path / "new.key"
    write_key_file(new, MasterKey.generate())
    real = manifests.write_part
    parts = []

    def power_cut(loc, table, k, rows):
        if table == "vault/keys":
            parts.append(k)
            if len(parts) == 2:
                raise KeyboardInterrupt("power cut")
        return real(loc, table, k, rows)

    monkeypatch.setattr(manifests, "write_part", power_cut)
    with pytest.raises(KeyboardInterrupt):
        rotate_key(Location(str(private(dest))), load_key(key), load_key(new))
    monkeypatch.setattr(manifests, "write_part", real)
    code, _, err = _run(capsys, "restore", dest, tmp_path / "mid", "--all", "--key", key, "--reason", "x")
    assert code == 2 and "interrupted" in err, err  # neither key restores while it is half-way
    code, out, err = _run(capsys, "rotate-key", dest, "--key", key, "--new-key", new)
    assert code == 0, err
    code, out, err = _run(
        capsys, "restore", dest, tmp_path / "after", "--all", "--key", new, "--reason", "after", "--workers", "1"
    )
    assert code == 0 and (tmp_path / "after" / HOPPER).exists(), err
    code, out, err = _run(capsys, "access-log", dest, "--verify", "--key", new)
    assert code == 0 and "intact" in out, out + err
