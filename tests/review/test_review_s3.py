"""The review page on an s3:// archive (moto's S3 server on 127.0.0.1): the quarantined output of a
withheld media is read through the state root like every command reads it, its flagged frame is
served, an original frame comes from the s3:// source once logged, and a release moves the output
from the state root's quarantine into DEST's bucket."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from starlette.testclient import TestClient

from faceveil.pipeline.jobs import media_id
from faceveil.review.app import Review, create_app
from faceveil.review.frames import Archive
from faceveil.storage import access_log, manifests
from faceveil.storage.keys import MasterKey
from faceveil.storage.paths import Location
from faceveil.storage.state import default_state_url

sys.path.insert(0, str(Path(__file__).resolve().parent))
from reviewclip import write_clip  # noqa: E402

TOKEN = "s3-review-token"
REL = "cam/clip.mp4"


def test_review_an_s3_archive(s3_endpoint, tmp_path):
    clip = write_clip(tmp_path / "clip.mp4")
    src, dest = Location("s3://review-src/archive"), Location("s3://review-out/archive")
    state = Location(default_state_url(dest.url))
    for bucket in {loc.root.split("/")[0] for loc in (src, dest, state)}:  # the buckets must exist first
        if not src.fs.exists(bucket):
            src.fs.mkdir(bucket)
    src.write_bytes(REL, clip.read_bytes())
    state.write_bytes(f"quarantine/{REL}", clip.read_bytes())
    mid = media_id(REL)
    manifests.write_part(state, "runs", "r1", [{"run_id": "r1", "src": src.url, "dest": dest.url}])
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
                "reason": "leak gate: frame 4",
                "quarantine_path": f"quarantine/{REL}",
                "leak_frames": [4],
                "frames_in": 12,
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
                "leak_faces": 1,
                "leak_boxes": json.dumps([{"detector": "centerface", "score": 0.8, "box": [100, 50, 140, 100]}]),
            }
        ],
    )
    c = TestClient(create_app(Review(Archive(dest, state, str(tmp_path)), MasterKey.generate()), TOKEN))
    q = c.get("/api/queue", params={"token": TOKEN}).json()["media"]
    assert [m["status"] for m in q] == ["leaked"]
    r = c.get(f"/frame/{mid}/4", params={"token": TOKEN})
    assert r.status_code == 200 and r.content[:2] == b"\xff\xd8"
    r = c.post(f"/original/{mid}/4", params={"token": TOKEN}, json={"reason": "check the s3 gate"})
    assert r.status_code == 200 and r.content[:2] == b"\xff\xd8"
    r = c.post("/api/release", params={"token": TOKEN}, json={"media": mid, "reason": "a face on a poster"})
    assert r.status_code == 200, r.text
    assert dest.exists(REL) and not state.exists(f"quarantine/{REL}")
    assert dest.read_bytes(REL) == clip.read_bytes()
    assert [x["action"] for x in access_log.read(state)] == ["review-original"] * 2 + ["review-release"] * 2
