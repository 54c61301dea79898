"""The records that travel between tasks: what to process, and what came of it."""
from __future__ import annotations

import hashlib
import posixpath
from dataclasses import dataclass, field

from faceveil.models.detections import Detections
from faceveil.storage.media import IMAGE_EXTS, VIDEO_EXTS, VideoInfo


def media_kind(rel: str) -> str | None:
    ext = posixpath.splitext(rel)[1].lower()
    return "video" if ext in VIDEO_EXTS else "image" if ext in IMAGE_EXTS else None


def media_id(rel: str) -> str:
    return hashlib.sha256(rel.encode()).hexdigest()[:16]


@dataclass
class MediaItem:
    """One file of the archive: its relative path, kind and whether a previous run finished it;
    `error` says why it cannot be processed at all (a name that must not be used, say)."""

    rel: str
    kind: str
    fingerprint: str
    done: bool = False
    error: str | None = None
    forgotten: dict[int, list] | None = None  # frame -> boxes where forgotten people were (never sealed again)

    @property
    def media_id(self) -> str:
        return media_id(self.rel)


@dataclass
class Chunk:
    """Frames [start, stop) of one video."""

    index: int
    start: int
    stop: int


@dataclass
class VideoPlan:
    """A probed video cut into chunks, or why it cannot be read."""

    info: VideoInfo | None = None
    chunks: list[Chunk] = field(default_factory=list)
    error: str | None = None


@dataclass
class ChunkDetections:
    """Faces found on the sampled frames of one chunk (or the error that stopped it)."""

    chunk: Chunk
    frames: list[int] = field(default_factory=list)
    dets: list[Detections] = field(default_factory=list)
    error: str | None = None
    seconds: float = 0.0
    device: str = "cpu"  # where the detector ran: "cuda" or "cpu"


@dataclass
class PulseEdit:
    """The pulse edit of one video (tasks/pulse.py): track id -> (first frame, offsets (n,3) float32
    in grey levels, one row per frame from the first) to add to that face's skin mask, and per track
    what the estimators read before and what the edit plans (rows of the report's pulse section).
    12 bytes per face per frame."""

    spec: str
    offsets: dict[int, tuple[int, object]] = field(default_factory=dict)  # track -> (first frame, np.ndarray (n,3))
    tracks: list[dict] = field(default_factory=list)
    seconds: float = 0.0


@dataclass
class Tracked:
    """The faces of a whole video, frame index -> Detections (tracks filled), or why there are none;
    with `--pulse`, the pulse edit to apply as the frames are encoded; the tracks of forgotten people."""

    per_frame: dict[int, Detections] = field(default_factory=dict)
    error: str | None = None
    seconds: float = 0.0  # detection and tracking
    device: str = "cpu"  # where its detection ran: "cuda" only when every chunk ran on CUDA
    pulse: PulseEdit | None = None
    forgotten: set[int] = field(default_factory=set)  # tracks where a forgotten person is: not sealed, not indexed


@dataclass
class Segment:
    """Frames [start, stop) of a video, anonymized and encoded alone: where the piece lies (relative
    to DEST), how many frames it redacted, and its checks; or the error that stopped it."""

    index: int
    start: int
    stop: int
    path: str | None = None
    redacted: int = 0
    audit: object | None = None  # validation.privacy.CheckResult
    error: str | None = None
    seconds: float = 0.0


@dataclass
class MediaResult:
    """The media manifest row of one file and, when indexing, its tracks' identity templates (plain
    vectors: the flow protects them with the index key before anything is stored)."""

    row: dict
    templates: list[dict] = field(default_factory=list)
    audit_embeddings: dict | None = None  # checked faces' embeddings, in memory only (run-level re-identification)
    leak_families: tuple[str, ...] = ()  # the detectors whose faces the leak gate found unmasked

    @property
    def ok(self) -> bool:
        return self.row["status"] == "ok"
