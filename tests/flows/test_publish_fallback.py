"""`faceveil publish` with the per-face fallback chain (models/fallback): a photo with a small bystander
at its edge is published (the bystander filled, not the photo withheld), every face's method is in
faces.parquet and the contract passes; with every identity check failing (`--id-margin=-1`) the faces
end solid and the dataset is still published."""

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from skimage import data

from faceveil.cli import main
from faceveil.models.fallback import FALLBACKS, MIN_JUDGED_SIZE
from faceveil.storage import manifests
from faceveil.storage.paths import Location

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from private import private  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.shared_data]  # flows over a photo of ../shared/data


def _face(rgb):
    from faceveil.models.detectors import create_detector

    d = create_detector("centerface").detect(rgb)
    return d[[int(np.argmax(d.scores))]]


def with_bystander(person: np.ndarray, size: float) -> np.ndarray:
    """The astronaut with `person`'s head, downscaled so its face is about `size` px, at her photo's right edge."""
    face = _face(person)
    x1, y1, x2, y2 = face.boxes[0]
    s = size / float(face.sizes[0])
    half = 1.2 * max(x2 - x1, y2 - y1)
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    head = person[int(max(0, cy - half)) : int(cy + half), int(max(0, cx - half)) : int(cx + half)]
    small = np.asarray(
        Image.fromarray(head).resize(
            (max(1, round(head.shape[1] * s)), max(1, round(head.shape[0] * s))), Image.LANCZOS
        )
    )
    out = np.ascontiguousarray(data.astronaut())
    h, w = small.shape[:2]
    out[300 : 300 + h, out.shape[1] - w :] = small
    return out


def test_a_small_bystander_is_filled_and_every_face_has_its_method(shared, tmp_path, prefect_server, capsys):
    src, dest = tmp_path / "src", tmp_path / "dest"
    src.mkdir()
    elon = np.asarray(Image.open(shared / "faces/elon/1.jpg").convert("RGB").resize((400, 400), Image.LANCZOS))
    Image.fromarray(with_bystander(elon, MIN_JUDGED_SIZE - 4)).save(src / "bystander.png")
    Image.fromarray(elon).save(src / "elon.jpg", quality=92)
    rc = main(["publish", str(src), str(dest), "--workers", "1", "--seed", "0"])
    out = capsys.readouterr().out
    print(out)
    assert rc == 0, out
    media = manifests.read_table(Location(str(private(dest))), "media").to_pandas()
    assert sorted(media.rel_path) == ["bystander.png", "elon.jpg"] and (media.status == "ok").all()  # none withheld
    assert (dest / "bystander.png").exists() and not (private(dest) / "quarantine").exists()
    faces = pd.read_parquet(private(dest) / "publish/faces.parquet")
    assert faces.method.isin(FALLBACKS).all() and faces.method.notna().all()
    by = faces[faces.media == "bystander.png"].sort_values("face_size")
    assert len(by) == 2 and by.method.iloc[0] == "solid" and by.method.iloc[1] != "solid", by
    shown = faces[faces.method != "solid"]
    assert (shown.identity_cosine < 0.85).all() and len(shown) == 2
    info = json.loads((private(dest) / "publish/summary.json").read_text())
    assert info["contracts"]["success"], info["contracts"]
    counts = info["metrics"]["faces_by_method"]
    assert sum(counts.values()) == len(faces) and counts["solid"] >= 1 and info["metrics"]["faces"] == len(shown)
    assert "Faces per method" in (dest / "datasheet.md").read_text()
    assert "methods:" in out
    pub, orig = np.asarray(Image.open(dest / "bystander.png")), np.asarray(Image.open(src / "bystander.png"))
    x1, y1, x2, y2 = _bystander_box(dest, "bystander.png")
    assert (
        len(np.unique(pub[y1:y2, x1:x2].reshape(-1, 3), axis=0)) == 1
        and (orig[y1:y2, x1:x2] != pub[y1:y2, x1:x2]).any()
    )


def _bystander_box(dest, rel):
    """The smallest face's box in the detections manifest, rounded inwards (inside its filled region)."""
    st = Location(str(private(dest)))
    media = manifests.read_table(st, "media").to_pandas()
    det = manifests.read_part(st, "detections", media[media.rel_path == rel].media_id.iloc[0]).to_pandas()
    b = det.loc[((det.x2 - det.x1) * (det.y2 - det.y1)).idxmin(), ["x1", "y1", "x2", "y2"]].to_numpy()
    return int(np.ceil(b[0])), int(np.ceil(b[1])), int(b[2]), int(b[3])


def test_faces_that_fail_every_identity_check_end_solid_and_the_dataset_is_published(
    shared, tmp_path, prefect_server, capsys
):
    src, dest = tmp_path / "src", tmp_path / "dest"
    src.mkdir()
    elon = Image.open(shared / "faces/elon/1.jpg").convert("RGB").resize((300, 300), Image.LANCZOS)
    elon.save(src / "elon.png")
    rc = main(["publish", str(src), str(dest), "--workers", "1", "--seed", "0", "--id-margin=-1"])
    out = capsys.readouterr().out
    print(out)
    assert rc == 0, out
    faces = pd.read_parquet(private(dest) / "publish/faces.parquet")
    assert len(faces) >= 1 and (faces.method == "solid").all()
    made = manifests.read_table(Location(str(private(dest))), "surrogates").to_pandas()
    assert (made.method == "solid").all() and len(made) == len(faces)
    assert (np.asarray(Image.open(dest / "elon.png")) != np.asarray(elon)).any()
    info = json.loads((private(dest) / "publish/summary.json").read_text())
    assert info["contracts"]["success"] and info["metrics"]["faces_by_method"]["solid"] == len(faces)
    assert info["metrics"]["faces"] == 0  # no face put back
