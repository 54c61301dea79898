"""`faceveil check DEST` and the scheduled_check flow, end to end on a tiny anonymized archive (a
1.2 s clip with one moving face and one photo): no leak in what the run published, a second check
does nothing, and a published photo replaced by one with a face where the run recorded none is
checked again, found leaking and named (exit 1; the flow run fails). A face left showing inside a
recorded region is not what this check sees (it has no originals); the changed file's SHA-256 is."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import skimage.data
from PIL import Image

from faceveil.cli import main
from faceveil.ops.deep_check import read_results
from faceveil.pipeline.jobs import media_id
from faceveil.storage import manifests
from faceveil.storage.paths import Location
from faceveil.validation.deep_check import spread_frames
from faceveil.validation.leak_bound import leak_upper_bound

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "review"))
from private import private  # noqa: E402
from reviewclip import write_clip  # noqa: E402

pytestmark = pytest.mark.slow  # end to end: an anonymize run (Prefect, Dask) first

CLIP, PHOTO = "cam/clip.mp4", "photos/astronaut.jpg"


@pytest.fixture(scope="module")
def published(tmp_path_factory, prefect_server) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("checked")
    src = root / "src"
    write_clip(src / CLIP)
    (src / "photos").mkdir()
    Image.fromarray(skimage.data.astronaut()).save(src / PHOTO, quality=95)
    assert main(["anonymize", str(src), str(root / "dest"), "--workers", "1", "--quiet"]) == 0
    return src, root / "dest"


@pytest.fixture
def archive(published, tmp_path) -> tuple[Path, Path]:
    """A copy of the published archive (public tree and state root) for a test that changes it."""
    src, dest = published
    shutil.copytree(dest, tmp_path / "dest")
    shutil.copytree(private(dest), private(tmp_path / "dest"))
    return src, tmp_path / "dest"


def _paste_a_face(src: Path, dest: Path) -> None:
    """The published photo replaced by one with the original face pasted where the run recorded none."""
    out = np.asarray(Image.open(dest / PHOTO).convert("RGB")).copy()
    face = np.asarray(Image.open(src / PHOTO).convert("RGB"))[40:200, 160:290]
    out[340:500, 370:500] = face
    Image.fromarray(out).save(dest / PHOTO, quality=95)


def _check(capsys, *args) -> tuple[int, list[str]]:
    code = main(["check", *map(str, args)])
    out = capsys.readouterr()
    return code, out.out.splitlines() + out.err.splitlines()


def _recorded(state: Location, rel: str, frames: list[int]) -> int:
    """The faces the run recorded (detection rows) in `frames` of the media at `rel`."""
    t = manifests.read_table(state, "detections").to_pandas()
    return int(t[(t.media_id == media_id(rel)) & t.frame_index.isin(frames)].shape[0])


def test_check_cli_end_to_end(archive, capsys, figures):
    src, dest = archive
    state = Location(str(private(dest)))
    code, lines = _check(capsys, dest, "--frames", 6)
    assert code == 0, lines
    n = _recorded(state, CLIP, spread_frames(12, 6))  # the moving face in each, and a weak face the run masked too
    assert spread_frames(12, 6) == [0, 2, 4, 7, 9, 11] and n >= 6
    assert lines[0].startswith(
        f"{CLIP}: 6 frames, {n} faces checked, 0 leaks, leak rate < {100 * leak_upper_bound(0, n):.2f} %"
    ), lines
    assert lines[1].startswith(f"{PHOTO}: 1 frames, 1 faces checked, 0 leaks, leak rate < 95.00 %"), lines
    assert lines[2].startswith(
        f"total: 2 media, 7 frames, {n + 1} faces checked, 0 leak(s), "
        f"leak rate < {100 * (1 - 0.05 ** (1 / (n + 1))):.2f} %"
    ), lines
    rows = read_results(state)
    assert [r["rel_path"] for r in rows] == [CLIP, PHOTO] and all(r["error"] is None for r in rows)
    clip = rows[0]
    figures.append(
        f"deep check: {clip['frames_checked'] / clip['seconds']:.1f} frames/s "
        f"({clip['frames_checked']} frames of a 320x180 clip, gate detectors on CPU)"
    )
    code, lines = _check(capsys, dest, "--frames", 6)
    assert code == 0 and all("unchanged since" in x for x in lines[:2]) and "0 checked now" in lines[2], lines
    _paste_a_face(src, dest)
    code, lines = _check(capsys, dest, "--frames", 6)
    assert code == 1 and "unchanged since" in lines[0], lines
    assert lines[1].startswith(f"{PHOTO}: 1 frames, 2 faces checked, 1 leak(s) in frame(s) [0]"), lines
    assert "its SHA-256 is not the media manifest's" in lines[1] and "1 checked now" in lines[2]
    code, lines = _check(capsys, dest, "--frames", 0)
    assert code == 2 and "--frames must be at least 1" in lines[-1]


def test_scheduled_check_flow_fails_naming_the_leaking_media(archive, tmp_path):
    from faceveil.flows.scheduled import scheduled_check

    src, dest = archive
    config = tmp_path / "archive.toml"
    config.write_text(f'src = "{src}"\ndest = "{dest}"\nworkers = 1\n')
    result = scheduled_check(str(config), frames=4)
    faces = _recorded(Location(str(private(dest))), CLIP, spread_frames(12, 4)) + 1
    assert (result["media"], result["checked"], result["leaks"], result["faces_checked"]) == (2, 2, 0, faces)
    assert scheduled_check(str(config), frames=4)["checked"] == 0
    _paste_a_face(src, dest)
    with pytest.raises(RuntimeError, match=f"1 media with a leak or not checked: {PHOTO}: 1 frames"):
        scheduled_check(str(config), frames=4)
