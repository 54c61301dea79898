"""Manual tracks: stored with who, when and why, refused with a clear error when they are not
boxes; forced into a media's faces (score 1, their own track ids) whatever the detector found; and a
re-run's discovery hands them to the media still to do."""

from __future__ import annotations

import numpy as np
import pytest

from faceveil.models.detections import Detections, with_forced
from faceveil.storage import manual_tracks
from faceveil.storage.paths import Location


def test_add_read_and_forced(tmp_path):
    state = Location(str(tmp_path))
    t = manual_tracks.add(state, "m1", {3: [1, 2, 30, 40], 4: [2, 2, 31, 41]}, 3, "ann", "missed bystander")
    t2 = manual_tracks.add(state, "m1", {4: [50, 50, 70, 70]}, 4, "ann", "second face")
    assert (t, t2) == (manual_tracks.FIRST_ID, manual_tracks.FIRST_ID + 1)
    rows = manual_tracks.read(state, "m1")
    assert len(rows) == 3 and {r["actor"] for r in rows} == {"ann"} and rows[0]["created_at"] is not None
    forced = manual_tracks.forced(state, "m1")
    assert sorted(forced) == [3, 4] and [tid for tid, _ in forced[4]] == [t, t2]
    assert manual_tracks.forced(state, "other") is None
    assert state.exists("review/manual_tracks/m1.parquet")


@pytest.mark.parametrize(
    "boxes, actor, reason, says",
    [
        ({}, "ann", "why", "at least one box"),
        ({0: [5, 5, 1, 1]}, "ann", "why", "frame 0: not a box"),
        ({0: [1, 1, 5, 5]}, "ann", " ", "who added it and why"),
        ({0: [1, 1, 5, 5]}, "", "why", "who added it and why"),
    ],
)
def test_bad_tracks_are_refused_naming_the_part(tmp_path, boxes, actor, reason, says):
    state = Location(str(tmp_path))
    with pytest.raises(ValueError, match=says) as e:
        manual_tracks.add(state, "m1", boxes, 0, actor, reason)
    assert "review/manual_tracks/m1" in str(e.value) and not state.exists("review/manual_tracks/m1.parquet")


def test_forced_boxes_join_the_detected_ones():
    found = {2: Detections(np.float32([[0, 0, 10, 10]]), np.float32([0.9]), track_ids=np.int64([4]))}
    out = with_forced(found, {2: [(1_000_000, [20, 20, 40, 40])], 5: [(1_000_000, [21, 21, 41, 41])]})
    assert len(out[2]) == 2 and out[2].track_ids.tolist() == [4, 1_000_000] and out[2].scores[1] == 1.0
    assert out[5].boxes.tolist() == [[21, 21, 41, 41]] and len(found[2]) == 1  # the input is left as it was
    assert with_forced(found, None) is found


def test_discovery_hands_manual_tracks_to_the_media_to_do(tmp_path):
    from faceveil.config import AnonymizeConfig
    from faceveil.pipeline.jobs import media_id
    from faceveil.storage.state import default_state_url
    from faceveil.tasks.discover import discover

    src, dest = tmp_path / "src", tmp_path / "out"
    src.mkdir()
    from PIL import Image

    Image.new("RGB", (64, 48)).save(src / "a.jpg")
    state = Location(default_state_url(str(dest)))
    manual_tracks.add(state, media_id("a.jpg"), {0: [4, 4, 30, 30]}, 0, "ann", "a face on a badge")
    items, _ = discover(AnonymizeConfig.of(src=str(src), dest=str(dest)))
    assert items[0].manual == {0: [(manual_tracks.FIRST_ID, [4.0, 4.0, 30.0, 30.0])]}


def test_a_face_added_to_a_published_media_makes_the_next_run_do_it_again(tmp_path):
    from faceveil.review import actions
    from faceveil.review.frames import Archive
    from faceveil.storage import manifests
    from faceveil.storage.keys import MasterKey

    state, dest = Location(str(tmp_path / "state")), Location(str(tmp_path / "out"))
    manifests.write_part(
        state,
        "media",
        "m1",
        [
            {
                "media_id": "m1",
                "rel_path": "a.jpg",
                "kind": "image",
                "status": "ok",
                "work_hash": "abc",
                "output_path": "a.jpg",
                "notes": [],
            }
        ],
    )
    track = actions.add_face(
        Archive(dest, state, str(tmp_path)),
        MasterKey.generate(),
        "m1",
        {0: [1, 1, 9, 9]},
        0,
        "a badge photo the detector missed",
    )
    row = manifests.read_part(state, "media", "m1").to_pylist()[0]
    assert row["status"] == "ok" and row["work_hash"] is None and f"manual track {track}" in row["notes"][-1]
