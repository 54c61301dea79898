"""`faceveil publish` end to end on two photos: one face (replaced, measured, in the datasheet) and
one without a face (copied byte for byte, recorded)."""
import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from skimage import data

from faceveil.cli import main

pytestmark = pytest.mark.slow  # a Prefect API, a Dask cluster, the generated-face pool


def test_publish_replaces_faces_copies_faceless_photos_and_writes_a_datasheet(tmp_path, prefect_server, capsys):
    src, dest = tmp_path / "src", tmp_path / "dest"
    (src / "people").mkdir(parents=True)
    Image.fromarray(data.astronaut()).save(src / "people/astronaut.png")
    Image.fromarray(data.coffee()).save(src / "coffee.jpg", quality=90)
    rc = main(["publish", str(src), str(dest), "--workers", "1", "--seed", "0"])
    out = capsys.readouterr().out
    print(out)
    assert rc == 0, out
    assert "non-commercial research" in out.split("\n")[0]  # the licence first, before anything runs
    assert (dest / "coffee.jpg").read_bytes() == (src / "coffee.jpg").read_bytes()
    orig, pub = np.asarray(Image.open(src / "people/astronaut.png")), np.asarray(Image.open(dest / "people/astronaut.png"))
    assert orig.shape == pub.shape and (orig != pub).any()
    faces = pd.read_parquet(dest / "_faceveil/publish/faces.parquet")
    assert list(faces.media) == ["people/astronaut.png"]
    f = faces.iloc[0]
    assert f.identity_cosine < 0.92 and f.detector_score >= 0.2 and np.isfinite(f.pose_error_deg) and len(f.surrogate_id) == 16
    info = json.loads((dest / "_faceveil/publish/summary.json").read_text())
    assert info["without_faces"] == ["coffee.jpg"] and info["photos"] == 2 and info["metrics"]["faces"] == 1
    assert info["generator"]["weights_id"].startswith("sha256:") and info["contracts"]["success"]
    page = (dest / "_faceveil/datasheet.html").read_text()
    assert "data:image/png;base64," in page and "non-commercial research" in page
    assert "Faces replaced | 1" in (dest / "_faceveil/datasheet.md").read_text()
    print("published face:", f.to_dict())
    # a second run has nothing new to do and gives the same table
    rc = main(["publish", str(src), str(dest), "--workers", "1", "--seed", "0"])
    assert rc == 0
    again = pd.read_parquet(dest / "_faceveil/publish/faces.parquet")
    assert again.surrogate_id.tolist() == faces.surrogate_id.tolist()
    assert again.identity_cosine.tolist() == pytest.approx(faces.identity_cosine.tolist())
