"""The review page in Debian's headless Chromium, driven through the DevTools protocol: a clip whose
face the run missed on purpose (--min-size over the face's size) is withheld by the leak gate; on
the page the reviewer opens it, draws a box around the face on the flagged frame (mouse events),
tracks it, types a reason and confirms; the archive is anonymized again (same flow, same gate) and
the media ends `ok`, with the face masked in every frame of the confirmed track (CenterFace on the
output), the manual track in its manifest and the review rows in the access log. A screenshot of
the page with the gate's box and the proposed track is kept (docs/review.png is one; with
FACEVEIL_SCREENSHOT_DIR set, a fresh copy goes there)."""

from __future__ import annotations

import os
import socket
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from faceveil.config import AnonymizeConfig
from faceveil.models.detections import iou_matrix
from faceveil.pipeline.jobs import media_id
from faceveil.review.app import Review, create_app, new_token
from faceveil.review.frames import Archive
from faceveil.storage import access_log, manifests, manual_tracks
from faceveil.storage.keys import MasterKey
from faceveil.storage.paths import Location
from faceveil.storage.state import default_state_url

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cdp import Browser  # noqa: E402
from reviewclip import faces_per_frame, write_clip  # noqa: E402

pytestmark = pytest.mark.slow  # two flow runs, a web server, Chromium

REL = "cam/clip.mp4"


class _Server:
    """The review app on a free loopback port, served by uvicorn in a thread."""

    def __init__(self, app):
        import uvicorn

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)
        self.thread.start()
        while not self.server.started:
            time.sleep(0.05)

    def stop(self):
        self.server.should_exit = True
        self.thread.join(10)


def _media_row(state: Location) -> dict:
    return manifests.read_part(state, "media", media_id(REL)).to_pylist()[0]


def test_add_a_missed_face_on_the_page_and_rerun(tmp_path, prefect_server, monkeypatch, figures):
    from faceveil.flows.launch import run_anonymize
    from PIL import Image

    t0 = time.perf_counter()
    src, dest = tmp_path / "src", tmp_path / "out"
    clip = write_clip(src / REL)
    config = AnonymizeConfig.of(
        src=str(src), dest=str(dest), min_size=1000, recheck=False, workers=1
    )  # misses the face
    first = run_anonymize(config)
    state = Location(default_state_url(str(dest)))
    row = _media_row(state)
    assert row["status"] == "leaked" and row["leak_frames"], row["reason"]
    flagged = int(row["leak_frames"][0])
    t_first = time.perf_counter() - t0

    monkeypatch.setenv("FACEVEIL_ACTOR", "reviewer-1")
    token, master = new_token(), MasterKey.generate()
    server = _Server(create_app(Review(Archive(Location(str(dest)), state, str(tmp_path)), master), token))
    browser = Browser(tmp_path / "profile")
    shot = tmp_path / "review.png"
    try:
        t1 = time.perf_counter()
        browser.goto(f"http://127.0.0.1:{server.port}/?token={token}")
        browser.wait("document.querySelectorAll('#list div').length === 1")
        browser.click("#list div")
        browser.wait(
            f"document.getElementById('frame').dataset.frame === '{flagged}' && "
            "document.getElementById('frame').complete && document.getElementById('frame').naturalWidth > 0"
        )
        gate = browser.eval("info.gate")[str(flagged)][0]["box"]
        rect = browser.eval(
            "(() => { const b = document.getElementById('frame').getBoundingClientRect();"
            " return [b.left, b.top, b.width / document.getElementById('frame').naturalWidth]; })()"
        )
        x0, y0, k = rect
        pad = 6
        browser.drag(
            x0 + (gate[0] - pad) * k, y0 + (gate[1] - pad) * k, x0 + (gate[2] + pad) * k, y0 + (gate[3] + pad) * k
        )
        assert f"on frame {flagged}" in browser.eval("document.getElementById('box').textContent")
        browser.click("#track")
        msg = browser.wait(
            "(() => { const t = document.getElementById('msg').textContent;"
            " return t.startsWith('tracked') ? t : null; })()"
        )
        browser.wait("document.getElementById('frame').complete")
        browser.screenshot(shot)
        browser.type("#reason", "missed face: the detector's size limit skipped it")
        browser.click("#confirm")
        done = browser.wait(
            "(() => { const t = document.getElementById('msg').textContent;"
            " return t.startsWith('manual track') ? t : null; })()"
        )
        t_page = time.perf_counter() - t1
    finally:
        browser.close()
        server.stop()
    assert "stored" in done, done

    tracks = manual_tracks.read(state, media_id(REL))
    frames = sorted(r["frame_index"] for r in tracks)
    assert tracks and {r["actor"] for r in tracks} == {"reviewer-1"} and flagged in frames, msg
    rows = access_log.read(state)
    assert [(r["action"], access_log.details(r)["outcome"]) for r in rows] == [
        ("review-add-face", "intent"),
        ("review-add-face", "done"),
    ]
    assert access_log.verify(state, master) == []

    t2 = time.perf_counter()
    again = run_anonymize(config)  # same flow, same settings, same gate: the manual track is forced in
    t_again = time.perf_counter() - t2
    row = _media_row(state)
    assert row["status"] == "ok", row["reason"]
    assert any(n.startswith("1 manual track(s) from review masked always") for n in row["notes"]), row["notes"]
    assert again["ok"] == 1 and first["ok"] == 0
    found_in, found_out = faces_per_frame(clip), faces_per_frame(dest / REL)
    boxes = {r["frame_index"]: [r["x1"], r["y1"], r["x2"], r["y2"]] for r in tracks}
    seen_in = [f for f in frames if len(found_in[f]) and iou_matrix(np.float32([boxes[f]]), found_in[f]).max() > 0.3]
    seen_out = [f for f in frames if len(found_out[f]) and iou_matrix(np.float32([boxes[f]]), found_out[f]).max() > 0.1]
    assert len(seen_in) == len(frames) and not seen_out, (seen_in, seen_out)
    assert [r["action"] for r in manifests.read_table(state, "access_log").to_pylist()] == ["review-add-face"] * 2

    img = Image.open(shot)
    assert img.size == (1400, 900) and np.asarray(img.convert("L")).std() > 10
    kept = ""
    if os.environ.get("FACEVEIL_SCREENSHOT_DIR"):
        out = Path(os.environ["FACEVEIL_SCREENSHOT_DIR"]).expanduser()
        out.mkdir(parents=True, exist_ok=True)
        img.convert("RGB").quantize(colors=256).save(out / "review.png", optimize=True)
        kept = f"; screenshot kept as {out / 'review.png'}"
    figures.append(
        f"review page: withheld clip ({t_first:.1f} s first run), box drawn and tracked over {len(frames)} "
        f"frames, confirmed in the page ({t_page:.1f} s in Chromium), re-run {t_again:.1f} s: ok, face "
        f"masked in {len(frames)}/{len(frames)} frames of the track (CenterFace on the output), "
        f"{time.perf_counter() - t0:.1f} s in all{kept}"
    )
