"""The review page's web app (Starlette), for loopback only: every request must carry the one-time
token (`?token=` or the X-Review-Token header), compared in constant time, else 403. Anonymized
frames need only the token; an original frame, a confirmed face, a release or a keep need the key
the server was started with and a reason, and are logged before they act (review/actions).
`create_app` is over 60 lines: its handlers are closures over the one Review, each a few lines,
and read best beside the routes that name them."""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass, field

from starlette.applications import Starlette
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from faceveil.review import actions
from faceveil.review.frames import (
    GATE,
    MANUAL,
    PROPOSED,
    Archive,
    anonymized_place,
    gate_boxes,
    jpeg,
    manual_boxes,
    media_row,
    queue,
    read_frame,
)
from faceveil.review.page import PAGE
from faceveil.storage.keys import MasterKey

TOKEN_HEADER = "x-review-token"


def new_token() -> str:
    return secrets.token_urlsafe(24)


@dataclass
class Review:
    """The server's state: the archive, the key (None: read-only), proposed tracks awaiting confirmation."""

    archive: Archive
    master: MasterKey | None = None
    proposals: dict[str, dict] = field(default_factory=dict)
    _detector: object = None

    def detector(self):
        if self._detector is None:
            from faceveil.models.detectors import DetectorSettings, create_detector
            from faceveil.review.manual_tracking import LOW_THRESHOLD

            self._detector = create_detector("centerface", DetectorSettings(threshold=LOW_THRESHOLD))
        return self._detector


class _TokenCheck(BaseHTTPMiddleware):
    def __init__(self, app, token: str):
        super().__init__(app)
        self.token = token.encode()

    async def dispatch(self, request: Request, call_next):
        given = request.query_params.get("token") or request.headers.get(TOKEN_HEADER) or ""
        if not hmac.compare_digest(given.encode(), self.token):
            return JSONResponse({"error": "forbidden: the review page's token is missing or wrong"}, status_code=403)
        response = await call_next(request)
        response.headers["Cache-Control"] = "no-store"
        response.headers["Referrer-Policy"] = "no-referrer"
        return response


def _errors(handler):
    """ValueError -> 400, no key -> 403, each with its message as JSON."""

    async def wrapped(request: Request):
        try:
            return await handler(request)
        except actions.KeyNeeded as e:
            return JSONResponse({"error": str(e)}, status_code=403)
        except (ValueError, KeyError, TypeError) as e:
            return JSONResponse({"error": str(e)}, status_code=400)

    return wrapped


async def _json(request: Request) -> dict:
    try:
        body = await request.json()
    except ValueError:
        raise ValueError("the request body must be a JSON object") from None
    if not isinstance(body, dict):
        raise ValueError("the request body must be a JSON object")
    return body


def create_app(review: Review, token: str) -> Starlette:
    """The app: the page, the queue, a media's details and frames, and the reviewer's actions."""
    a = review.archive

    async def page(request: Request):
        return HTMLResponse(PAGE)

    async def report(request: Request):
        """A run's report (default: the latest), from the state root; it carries no scripts."""
        from faceveil.validation.report import REPORTS, _check_run_id

        rel = f"{REPORTS}/{_check_run_id(request.query_params.get('run') or 'latest')}.html"
        if not a.state.exists(rel):
            raise ValueError(f"{a.state.display(rel)}: no such report")
        return HTMLResponse(a.state.read_bytes(rel).decode())

    async def the_queue(request: Request):
        return JSONResponse({"media": queue(a.state), "keyed": review.master is not None})

    async def media(request: Request):
        mid = request.path_params["mid"]
        row = media_row(a.state, mid)
        mine = {k: v for k, v in review.proposals.items() if v["media"] == mid}
        return JSONResponse(
            {
                "row": {
                    k: row.get(k)
                    for k in (
                        "media_id",
                        "rel_path",
                        "kind",
                        "status",
                        "reason",
                        "leak_frames",
                        "frames_in",
                        "width",
                        "height",
                        "fps",
                        "notes",
                    )
                },
                "gate": gate_boxes(a.state, mid),
                "manual": manual_boxes(a.state, mid),
                "proposals": {k: v["boxes"] for k, v in mine.items()},
            }
        )

    async def frame(request: Request):
        mid, i = request.path_params["mid"], int(request.path_params["i"])
        row = media_row(a.state, mid)
        loc, rel = anonymized_place(a, row)
        boxes = [(GATE, x["box"]) for x in gate_boxes(a.state, mid).get(i, [])]
        boxes += [(MANUAL, t[i]) for t in manual_boxes(a.state, mid).values() if i in t]
        boxes += [(PROPOSED, p["boxes"][i]) for p in review.proposals.values() if p["media"] == mid and i in p["boxes"]]
        return Response(jpeg(read_frame(loc, rel, row["kind"], i, a.scratch), boxes), media_type="image/jpeg")

    async def original(request: Request):
        mid, i = request.path_params["mid"], int(request.path_params["i"])
        body = await _json(request)
        rgb = actions.original_frame(a, review.master, mid, i, body.get("reason"))
        return Response(jpeg(rgb), media_type="image/jpeg")

    async def track(request: Request):
        body = await _json(request)
        mid, i, box = str(body["media"]), int(body["frame"]), [float(v) for v in body["box"]]
        boxes = _follow(review, mid, i, box)
        pid = secrets.token_hex(8)
        review.proposals[pid] = {"media": mid, "seed": i, "boxes": boxes}
        return JSONResponse({"proposal": pid, "boxes": boxes, "frames": [min(boxes), max(boxes)]})

    async def confirm(request: Request):
        body = await _json(request)
        p = review.proposals.get(str(body.get("proposal")))
        if p is None:
            raise ValueError(f"no proposed track {body.get('proposal')!r}: draw a box and track it first")
        tid = actions.add_face(a, review.master, p["media"], p["boxes"], p["seed"], body.get("reason"))
        review.proposals.pop(str(body["proposal"]))
        actions.refresh_report(a.state)
        return JSONResponse(
            {
                "track_id": tid,
                "frames": len(p["boxes"]),
                "next": "run `faceveil anonymize SRC DEST` again: the media is anonymized with it",
            }
        )

    async def release(request: Request):
        body = await _json(request)
        row = actions.release(a, review.master, str(body.get("media")), body.get("reason"))
        actions.refresh_report(a.state)
        return JSONResponse({"status": row["status"], "reason": row["reason"], "output_path": row["output_path"]})

    async def keep(request: Request):
        body = await _json(request)
        row = actions.keep(a, review.master, str(body.get("media")), body.get("reason"))
        actions.refresh_report(a.state)
        return JSONResponse({"status": row["status"], "notes": row["notes"]})

    routes = [
        Route("/", page),
        Route("/report", _errors(report)),
        Route("/api/queue", _errors(the_queue)),
        Route("/api/media/{mid}", _errors(media)),
        Route("/frame/{mid}/{i:int}", _errors(frame)),
        Route("/original/{mid}/{i:int}", _errors(original), methods=["POST"]),
        Route("/api/track", _errors(track), methods=["POST"]),
        Route("/api/confirm", _errors(confirm), methods=["POST"]),
        Route("/api/release", _errors(release), methods=["POST"]),
        Route("/api/keep", _errors(keep), methods=["POST"]),
    ]
    app = Starlette(routes=routes)
    app.add_middleware(_TokenCheck, token=token)
    return app


def _follow(review: Review, media_id: str, frame: int, box: list[float]) -> dict[int, list[float]]:
    """A drawn box followed through the media's anonymized output (where the missed face shows)."""
    from faceveil.review.manual_tracking import track_box, track_photo
    from faceveil.storage.media import probe_video

    a = review.archive
    row = media_row(a.state, media_id)
    if row["kind"] == "image":
        return track_photo(box)
    loc, rel = anonymized_place(a, row)
    with loc.local_file(rel, a.scratch) as local:
        return track_box(local, probe_video(local), frame, box, review.detector())
