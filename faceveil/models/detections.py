"""`Detections`: the one data type every detector, tracker, anonymizer and writer exchanges."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


def _f32(a, shape) -> np.ndarray:
    return np.asarray(a, dtype=np.float32).reshape(shape)


@dataclass
class Detections:
    """Faces in one frame: boxes xyxy (N,4), scores (N,), 5-point landmarks (N,5,2; NaN where
    unknown), track ids (N,; -1 = untracked), `filled` (N,; True where the tracker supplied the box)
    and `motion` (N,2; box-centre velocity in pixels per frame, 0 where unknown)."""

    boxes: np.ndarray
    scores: np.ndarray
    landmarks: np.ndarray = field(default=None)  # type: ignore[assignment]
    track_ids: np.ndarray = field(default=None)  # type: ignore[assignment]
    filled: np.ndarray = field(default=None)  # type: ignore[assignment]
    motion: np.ndarray = field(default=None)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        self.boxes = _f32(self.boxes, (-1, 4))
        n = len(self.boxes)
        self.scores = _f32(self.scores, (n,))
        self.landmarks = (
            np.full((n, 5, 2), np.nan, np.float32) if self.landmarks is None else _f32(self.landmarks, (n, 5, 2))
        )
        self.track_ids = (
            np.full(n, -1, np.int64) if self.track_ids is None else np.asarray(self.track_ids, np.int64).reshape(n)
        )
        self.filled = np.zeros(n, bool) if self.filled is None else np.asarray(self.filled, bool).reshape(n)
        self.motion = np.zeros((n, 2), np.float32) if self.motion is None else _f32(self.motion, (n, 2))

    @classmethod
    def empty(cls) -> "Detections":
        return cls(np.zeros((0, 4)), np.zeros(0))

    def __len__(self) -> int:
        return len(self.boxes)

    def __getitem__(self, idx) -> "Detections":
        return Detections(*(getattr(self, f)[idx] for f in FIELDS))

    @classmethod
    def concat(cls, parts: list["Detections"]) -> "Detections":
        parts = [p for p in parts if len(p)]
        if not parts:
            return cls.empty()
        return cls(*(np.concatenate([getattr(p, f) for p in parts]) for f in FIELDS))

    def clip(self, width: int, height: int) -> "Detections":
        """Boxes clipped to the frame; boxes left with no area are dropped."""
        b = self.boxes.copy()
        b[:, [0, 2]] = b[:, [0, 2]].clip(0, width)
        b[:, [1, 3]] = b[:, [1, 3]].clip(0, height)
        keep = (b[:, 2] > b[:, 0]) & (b[:, 3] > b[:, 1])
        out = self[keep]
        out.boxes = b[keep]
        return out

    def scale(self, sx: float, sy: float) -> "Detections":
        """Coordinates multiplied by (sx, sy)."""
        f = np.array([sx, sy], np.float32)
        return Detections(
            self.boxes * np.tile(f, 2), self.scores, self.landmarks * f, self.track_ids, self.filled, self.motion * f
        )

    def translate(self, dx: float, dy: float) -> "Detections":
        """Coordinates shifted by (dx, dy) (into a crop's frame, say)."""
        f = np.array([dx, dy], np.float32)
        return Detections(
            self.boxes + np.tile(f, 2), self.scores, self.landmarks + f, self.track_ids, self.filled, self.motion
        )

    def mirrored(self, width: int) -> "Detections":
        """The same faces in the frame mirrored left-right (`rgb[:, ::-1]` of a frame `width` wide):
        boxes and landmarks flipped, the landmarks' left and right points swapped so eye 0 stays the
        subject's right eye."""
        b = self.boxes.copy()
        b[:, [0, 2]] = width - self.boxes[:, [2, 0]]
        lm = self.landmarks.copy()
        lm[..., 0] = width - lm[..., 0]
        lm = lm[:, [1, 0, 2, 4, 3]]
        return Detections(b, self.scores, lm, self.track_ids, self.filled, self.motion * np.float32([-1, 1]))

    @property
    def sizes(self) -> np.ndarray:
        """Face size per box: the geometric mean of width and height."""
        wh = self.boxes[:, 2:] - self.boxes[:, :2]
        return np.sqrt(np.clip(wh[:, 0] * wh[:, 1], 0, None))


FIELDS = ("boxes", "scores", "landmarks", "track_ids", "filled", "motion")


def _area(x: np.ndarray) -> np.ndarray:
    return np.prod(np.clip(x[:, 2:] - x[:, :2], 0, None), axis=1)


def _intersection(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N, M) intersection areas of xyxy boxes a (N,4) and b (M,4)."""
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    return np.prod(np.clip(rb - lt, 0, None), axis=2)


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of xyxy boxes a (N,4) and b (M,4)."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)), np.float32)
    inter = _intersection(a, b)
    union = _area(a)[:, None] + _area(b)[None, :] - inter
    return (inter / np.maximum(union, 1e-9)).astype(np.float32)


def inside_share(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N, M): the share of each xyxy box of a (N,4) that lies inside each box of b (M,4)."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)), np.float32)
    return (_intersection(a, b) / np.maximum(_area(a)[:, None], 1e-9)).astype(np.float32)


def nested(dets: "Detections", share: float = 0.6) -> np.ndarray:
    """(N,) bool: the detections that lie `share` or more inside a larger one (a detector's box on part of
    a large face: its mouth and chin, one eye)."""
    if len(dets) < 2:
        return np.zeros(len(dets), bool)
    inside = inside_share(dets.boxes, dets.boxes)
    np.fill_diagonal(inside, 0)
    area = _area(dets.boxes)
    return ((inside >= share) & (area[:, None] < area[None, :])).any(axis=1)


def overlapping_tracks(per_frame: dict[int, Detections], marks: dict[int, list], min_iou: float = 0.3) -> set[int]:
    """The track ids of `per_frame` (frame -> Detections) with a box on some frame that overlaps one of
    `marks` (frame -> xyxy boxes) on that frame by `min_iou` or more."""
    out: set[int] = set()
    for f, boxes in marks.items():
        d = per_frame.get(int(f))
        if d is None or not len(d) or not len(boxes):
            continue
        hit = (iou_matrix(d.boxes, np.asarray(boxes, np.float32).reshape(-1, 4)) >= min_iou).any(axis=1)
        out |= {int(t) for t in d.track_ids[hit] if t >= 0}
    return out


def with_forced(per_frame: dict[int, Detections], forced: dict[int, list] | None) -> dict[int, Detections]:
    """`per_frame` with the `forced` boxes (frame -> [(track id, xyxy)]: faces a reviewer added) added
    to their frames as detections of score 1, masked like any other face whatever the detector found."""
    if not forced:
        return per_frame
    out = dict(per_frame)
    for f, marks in forced.items():
        extra = Detections(
            np.asarray([b for _, b in marks], np.float32).reshape(-1, 4),
            np.ones(len(marks)),
            track_ids=np.asarray([t for t, _ in marks], np.int64),
        )
        out[int(f)] = Detections.concat([out[int(f)], extra]) if int(f) in out else extra
    return out


def merge(parts: list[Detections], iou_threshold: float = 0.3) -> Detections:
    """The faces of several detectors as one set: overlapping boxes merged, the best-scoring kept."""
    d = Detections.concat(parts)
    return d[nms(d.boxes, d.scores, iou_threshold)] if len(d) > 1 else d


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Indices kept by greedy non-maximum suppression, best score first."""
    order = np.argsort(-scores)
    keep: list[int] = []
    while len(order):
        i = order[0]
        keep.append(int(i))
        if len(order) == 1:
            break
        ious = iou_matrix(boxes[i : i + 1], boxes[order[1:]])[0]
        order = order[1:][ious < iou_threshold]
    return np.asarray(keep, np.int64)
