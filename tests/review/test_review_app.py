"""The review app's API (Starlette's TestClient, no browser, no flow run): the token is checked on
every request; an original frame is never served without the key, and with it only once its
access-log row is written; a release without a reason is refused and writes nothing; a drawn box is
tracked, confirmed into the manual-tracks manifest, and a release moves the output out of quarantine."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from faceveil.pipeline.jobs import media_id
from faceveil.review import actions
from faceveil.review.app import Review, create_app
from faceveil.review.frames import Archive
from faceveil.storage import access_log, manifests, manual_tracks
from faceveil.storage.keys import MasterKey
from faceveil.storage.paths import Location

sys.path.insert(0, str(Path(__file__).resolve().parent))
from reviewclip import faces_per_frame, write_clip  # noqa: E402

TOKEN = "t0ken-for-tests"
REL = "cam/clip.mp4"


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return write_clip(tmp_path_factory.mktemp("src") / REL)


@pytest.fixture
def archive(clip, tmp_path):
    """A withheld media as a run leaves it: its row `leaked`, its output in quarantine (here the
    input itself: the face shows), the gate's boxes in checks/frames, the run's source recorded."""
    src = clip.parents[1]
    dest, state = Location(str(tmp_path / "out")), Location(str(tmp_path / "state"))
    dest.ensure_root()
    mid = media_id(REL)
    state.fs.makedirs(state.path("quarantine/cam"), exist_ok=True)
    shutil.copy(clip, state.path(f"quarantine/{REL}"))
    box = [float(v) for v in faces_per_frame(clip)[4][0]]
    manifests.write_part(state, "runs", "r1", [{"run_id": "r1", "src": str(src), "dest": dest.url, "status": "leaked"}])
    manifests.write_part(
        state,
        "media",
        mid,
        [
            {
                "media_id": mid,
                "rel_path": REL,
                "kind": "video",
                "run_id": "r1",
                "status": "leaked",
                "reason": "leak gate: 1 unmasked face(s) in checked frame(s) [4]",
                "quarantine_path": f"quarantine/{REL}",
                "leak_frames": [4],
                "frames_in": 12,
                "width": 320,
                "height": 180,
                "fps": 10.0,
                "notes": [],
            }
        ],
    )
    manifests.write_part(
        state,
        "checks/frames",
        mid,
        [
            {
                "media_id": mid,
                "frame_index": 4,
                "faces_in": 0,
                "leak_faces": 1,
                "leak_boxes": json.dumps([{"detector": "blazeface", "score": 0.9, "box": box}]),
            }
        ],
    )
    return Archive(dest, state, str(tmp_path)), mid, box


def _client(archive, master=None) -> TestClient:
    return TestClient(create_app(Review(archive, master), TOKEN))


def test_wrong_or_missing_token_is_refused(archive):
    a, mid, _ = archive
    c = _client(a, MasterKey.generate())
    for url in ("/", "/api/queue", f"/api/media/{mid}", f"/frame/{mid}/4"):
        assert c.get(url).status_code == 403
        assert c.get(url, params={"token": TOKEN + "x"}).status_code == 403
        assert c.get(url, headers={"X-Review-Token": "nope"}).status_code == 403
    r = c.post("/api/release", json={"media": mid, "reason": "false alarm"})
    assert r.status_code == 403 and a.state.exists(f"quarantine/{REL}")
    assert c.get("/api/queue", params={"token": TOKEN}).status_code == 200
    q = c.get("/api/queue", headers={"X-Review-Token": TOKEN}).json()
    assert [m["rel_path"] for m in q["media"]] == [REL] and q["media"][0]["status"] == "leaked"


def test_the_flagged_frame_is_served_with_the_gates_boxes(archive):
    a, mid, _ = archive
    c = _client(a)
    info = c.get(f"/api/media/{mid}", params={"token": TOKEN}).json()
    assert list(info["gate"]) == ["4"] and info["row"]["status"] == "leaked"
    r = c.get(f"/frame/{mid}/4", params={"token": TOKEN})
    assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg" and r.content[:2] == b"\xff\xd8"
    assert c.get(f"/frame/{mid}/99", params={"token": TOKEN}).status_code == 400


def test_an_original_frame_needs_the_key_and_a_reason_and_is_logged_first(archive, monkeypatch):
    a, mid, _ = archive
    url = f"/original/{mid}/4"
    r = _client(a).post(url, params={"token": TOKEN}, json={"reason": "check the gate"})
    assert r.status_code == 403 and "key" in r.json()["error"]
    assert not a.state.exists("access_log")  # nothing logged, nothing shown
    master = MasterKey.generate()
    c = _client(a, master)
    r = c.post(url, params={"token": TOKEN}, json={"reason": "  "})
    assert r.status_code == 400 and "reason" in r.json()["error"] and not access_log.read(a.state)
    seen = []
    from faceveil.review import frames as frames_mod

    real = frames_mod.read_frame

    def spy(loc, rel, kind, index, scratch):  # the original is read only after its row exists
        if loc.url != a.state.url:
            seen.append([(r["action"], access_log.details(r)["outcome"]) for r in access_log.read(a.state)])
        return real(loc, rel, kind, index, scratch)

    monkeypatch.setattr(actions, "read_frame", spy)
    r = c.post(url, params={"token": TOKEN}, json={"reason": "check the gate's verdict"})
    assert r.status_code == 200 and r.content[:2] == b"\xff\xd8"
    assert seen == [[("review-original", "intent")]]
    rows = access_log.read(a.state)
    assert [(x["action"], access_log.details(x)["outcome"]) for x in rows] == [
        ("review-original", "intent"),
        ("review-original", "done"),
    ]
    assert rows[0]["matched"] == [f"{mid}@4"] and rows[0]["reason"] == "check the gate's verdict"
    assert access_log.verify(a.state, master) == []


def test_release_without_a_reason_is_refused_and_writes_nothing(archive):
    a, mid, _ = archive
    c = _client(a, MasterKey.generate())
    before = manifests.read_part(a.state, "media", mid).to_pylist()
    for body in ({"media": mid}, {"media": mid, "reason": ""}, {"media": mid, "reason": "   "}):
        r = c.post("/api/release", params={"token": TOKEN}, json=body)
        assert r.status_code == 400 and "reason" in r.json()["error"]
    assert manifests.read_part(a.state, "media", mid).to_pylist() == before
    assert not a.state.exists("access_log") and not a.dest.exists(REL) and a.state.exists(f"quarantine/{REL}")


def test_release_with_a_reason_is_logged_then_published(archive, monkeypatch):
    a, mid, _ = archive
    monkeypatch.setenv("FACEVEIL_ACTOR", "alice")
    c = _client(a, MasterKey.generate())
    r = c.post("/api/release", params={"token": TOKEN}, json={"media": mid, "reason": "a face on a poster"})
    assert r.status_code == 200, r.text
    row = manifests.read_part(a.state, "media", mid).to_pylist()[0]
    assert row["status"] == "released" and "alice" in row["reason"] and "a face on a poster" in row["reason"]
    assert a.dest.exists(REL) and not a.state.exists(f"quarantine/{REL}") and row["output_path"] == REL
    rows = access_log.read(a.state)
    assert [x["action"] for x in rows] == ["review-release"] * 2 and rows[0]["actor"] == "alice"
    again = c.post("/api/release", params={"token": TOKEN}, json={"media": mid, "reason": "again"})
    assert again.status_code == 400 and "not withheld" in again.json()["error"]


def test_a_drawn_box_is_tracked_and_confirmed_into_the_manifest(archive, monkeypatch):
    a, mid, box = archive
    monkeypatch.setenv("FACEVEIL_ACTOR", "bob")
    c = _client(a, MasterKey.generate())
    drawn = [box[0] - 4, box[1] - 4, box[2] + 4, box[3] + 4]
    r = c.post("/api/track", params={"token": TOKEN}, json={"media": mid, "frame": 4, "box": drawn})
    assert r.status_code == 200, r.text
    p = r.json()
    assert p["frames"] == [0, 11] and p["boxes"]["4"] == drawn
    bad = c.post("/api/track", params={"token": TOKEN}, json={"media": mid, "frame": 4, "box": [10, 10, 5, 5]})
    assert bad.status_code == 400 and "not a box" in bad.json()["error"]
    assert c.post("/api/confirm", params={"token": TOKEN}, json={"proposal": p["proposal"]}).status_code == 400
    r = c.post("/api/confirm", params={"token": TOKEN}, json={"proposal": p["proposal"], "reason": "missed face"})
    assert r.status_code == 200 and r.json()["track_id"] == manual_tracks.FIRST_ID
    rows = manual_tracks.read(a.state, mid)
    assert len(rows) == 12 and {x["actor"] for x in rows} == {"bob"} and {x["reason"] for x in rows} == {"missed face"}
    forced = manual_tracks.forced(a.state, mid)
    assert sorted(forced) == list(range(12)) and forced[4][0][0] == manual_tracks.FIRST_ID
    assert [x["action"] for x in access_log.read(a.state)] == ["review-add-face"] * 2


def test_the_report_lists_every_review_action(archive, monkeypatch):
    from faceveil.validation.report import render_html
    from faceveil.validation.review_log import review_actions

    a, mid, _ = archive
    monkeypatch.setenv("FACEVEIL_ACTOR", "carol")
    master = MasterKey.generate()
    actions.keep(a, master, mid, "looks like a real face: re-run after adding it")
    actions.release(a, master, mid, "false alarm: a face on a poster")
    got = review_actions(a.state)
    assert [(r["action"], r["actor"], r["outcome"], r["targets"]) for r in got] == [
        ("keep", "carol", "done", [mid]),
        ("release", "carol", "done", [mid]),
    ]
    page = render_html({"run_id": "r1", "review": got})
    assert "Review (exemption log)" in page and "false alarm: a face on a poster" in page


def test_the_page_opens_the_latest_report(archive):
    from faceveil.validation.report import write_report

    a, _, _ = archive
    c = _client(a)
    assert c.get("/report", params={"token": TOKEN}).status_code == 400  # no report yet: said, not a crash
    write_report(a.state, {"run_id": "r1", "status": "leaked"})
    r = c.get("/report", params={"token": TOKEN})
    assert r.status_code == 200 and "faceveil run r1" in r.text
    assert c.get("/report", params={"token": TOKEN, "run": "../../etc/passwd"}).status_code == 400
    assert c.get("/report").status_code == 403
