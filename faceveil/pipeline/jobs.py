"""The records that travel between tasks: what to process, and what came of it."""

from __future__ import annotations

import posixpath
from dataclasses import dataclass, field

import numpy as np

from faceveil.hashing import media_id
from faceveil.models.detections import Detections
from faceveil.storage.media import IMAGE_EXTS, VIDEO_EXTS, VideoInfo


def media_kind(rel: str) -> str | None:
    ext = posixpath.splitext(rel)[1].lower()
    return "video" if ext in VIDEO_EXTS else "image" if ext in IMAGE_EXTS else None


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
    manual: dict[int, list] | None = None  # frame -> [(track id, box)]: faces a reviewer added, always masked

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
    """The pulse edit of one video (tasks/pulse.py): per track the offsets, in grey levels, to add to
    each skin cell (models/rppg/skin.label_cells) of that face in each frame from its first, kept as
    the whole skin's (n,3) float32 and, for the cells whose own scrub differs, that difference (n,m,3)
    float16 (at most MAX_CELL_SCRUB: 3 decimals); and per track what the estimators read before and
    what the edit plans (rows of the report's pulse section)."""

    spec: str
    offsets: dict[int, tuple] = field(default_factory=dict)  # track -> (first frame, whole, cells, per cell)
    tracks: list[dict] = field(default_factory=list)
    seconds: float = 0.0

    def set(self, track: int, first: int, delta: np.ndarray) -> None:
        """Track `track`'s offsets `delta` (n, cells, 3) from frame `first`."""
        whole = np.median(delta, axis=1)
        extra = delta - whole[:, None]
        cells = np.flatnonzero(np.abs(extra).max(axis=(0, 2)) > 1e-4)
        self.offsets[track] = (
            first,
            whole.astype(np.float32),
            cells.astype(np.int16),
            extra[:, cells].astype(np.float16),
        )

    def frames(self, track: int) -> range:
        first, whole, _, _ = self.offsets[track]
        return range(first, first + len(whole))

    def at(self, track: int, i: int, n_cells: int) -> np.ndarray | None:
        """The offsets (n_cells, 3) of track `track` in frame `i`; None outside its frames."""
        if track not in self.offsets or i not in self.frames(track):
            return None
        first, whole, cells, extra = self.offsets[track]
        out = np.repeat(whole[i - first][None].astype(np.float64), n_cells, axis=0)
        out[cells] += extra[i - first]
        return out


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
    check_result: object | None = None  # validation.privacy.CheckResult
    error: str | None = None
    seconds: float = 0.0


@dataclass
class MediaResult:
    """The media manifest row of one file and, when indexing, its tracks' identity templates (plain
    vectors: the flow protects them with the index key before anything is stored)."""

    row: dict
    templates: list[dict] = field(default_factory=list)
    checked_embeddings: dict | None = None  # checked faces' embeddings, in memory only (run-level re-identification)
    leak_families: tuple[str, ...] = ()  # the detectors whose faces the leak gate found unmasked

    @property
    def ok(self) -> bool:
        return self.row["status"] == "ok"
