"""A face the machine missed, followed from the box a reviewer drew: forward and backward from that
frame, the detector re-run at a low threshold in a window around the last box; the drawn box's
size and offset kept relative to the face found. A frame where nothing is found keeps the last box
(masking too much is safe); after `max_gap` such frames in a row the track ends there."""

from __future__ import annotations

import numpy as np

from faceveil.models.detections import Detections, iou_matrix
from faceveil.storage.media import VideoInfo, iter_frames

LOW_THRESHOLD = 0.2  # well under the detectors' defaults: the reviewer's box says a face is there


def _window(box, w: int, h: int, least: int = 96) -> tuple[int, int, int, int]:
    x1, y1, x2, y2 = box
    side = int(max(least, 3 * (x2 - x1), 3 * (y2 - y1)))
    cx1 = int(min(max(0, (x1 + x2 - side) / 2), max(0, w - side)))
    cy1 = int(min(max(0, (y1 + y2 - side) / 2), max(0, h - side)))
    return cx1, cy1, min(w, cx1 + side), min(h, cy1 + side)


def find_near(detector, rgb: np.ndarray, box, min_iou: float = 0.1) -> np.ndarray | None:
    """The face `detector` finds in a window around `box` that overlaps it most, in frame
    coordinates; None when none overlaps it by `min_iou`. Small windows are enlarged 2x."""
    import cv2

    h, w = rgb.shape[:2]
    cx1, cy1, cx2, cy2 = _window(box, w, h)
    crop = np.ascontiguousarray(rgb[cy1:cy2, cx1:cx2])
    zoom = 2.0 if max(crop.shape[:2]) < 320 else 1.0
    if zoom != 1.0:
        crop = cv2.resize(crop, None, fx=zoom, fy=zoom, interpolation=cv2.INTER_CUBIC)
    found: Detections = detector.detect(crop)
    if not len(found):
        return None
    boxes = found.boxes / zoom + np.array([cx1, cy1, cx1, cy1], np.float32)
    ious = iou_matrix(np.asarray([box], np.float32), boxes)[0]
    k = int(ious.argmax())
    return boxes[k] if ious[k] >= min_iou else None


class _Follower:
    """Keeps the drawn box's geometry relative to the face found at the seed frame."""

    def __init__(self, detector, drawn, found):
        self.detector, self.drawn = detector, np.asarray(drawn, np.float32)
        self.ref = found if found is not None else self.drawn

    def place(self, face: np.ndarray) -> np.ndarray:
        """The drawn box moved and scaled the way the face moved from the seed's."""
        rw, rh = self.ref[2] - self.ref[0], self.ref[3] - self.ref[1]
        s = np.sqrt(max(face[2] - face[0], 1) * max(face[3] - face[1], 1) / max(rw * rh, 1))
        rc = (self.ref[:2] + self.ref[2:]) / 2
        fc = (face[:2] + face[2:]) / 2
        return np.concatenate([fc + (self.drawn[:2] - rc) * s, fc + (self.drawn[2:] - rc) * s])

    def follow(self, frames, max_gap: int) -> dict[int, list[float]]:
        """Boxes along `frames` ((index, rgb) in the order to follow), from the drawn box on."""
        out, last_face, misses = {}, self.ref, 0
        for i, rgb in frames:
            face = find_near(self.detector, rgb, last_face)
            if face is None:
                misses += 1
                if misses > max_gap:
                    break
            else:
                last_face, misses = face, 0
            h, w = rgb.shape[:2]
            b = self.place(last_face)
            out[i] = [
                float(np.clip(b[0], 0, w)),
                float(np.clip(b[1], 0, h)),
                float(np.clip(b[2], 0, w)),
                float(np.clip(b[3], 0, h)),
            ]
        return out


def track_box(
    path: str, info: VideoInfo, frame: int, box, detector, max_gap: int = 10, span: int = 300
) -> dict[int, list[float]]:
    """frame -> box of the face drawn as `box` (x1, y1, x2, y2) on `frame` of the video at `path`,
    followed at most `span` frames each way (the frames before are held in memory to be walked back)."""
    x1, y1, x2, y2 = (float(v) for v in box)
    if not (x2 > x1 and y2 > y1):
        raise ValueError(f"not a box: {list(box)} (x1 < x2 and y1 < y2 are needed)")
    if not 0 <= frame < info.n_frames:
        raise ValueError(f"frame {frame} is outside the video's {info.n_frames} frames")
    seed_rgb = next(iter_frames(path, info, frame, frame + 1))[1]
    f = _Follower(detector, (x1, y1, x2, y2), find_near(detector, seed_rgb, (x1, y1, x2, y2)))
    out = {frame: [x1, y1, x2, y2]}
    after = f.follow(iter_frames(path, info, frame + 1, min(info.n_frames, frame + 1 + span)), max_gap)
    before_frames = list(iter_frames(path, info, max(0, frame - span), frame))[::-1]
    before = f.follow(before_frames, max_gap)
    return {**before, **out, **after}


def track_photo(box) -> dict[int, list[float]]:
    """A photo's manual face: the drawn box on its only frame."""
    x1, y1, x2, y2 = (float(v) for v in box)
    if not (x2 > x1 and y2 > y1):
        raise ValueError(f"not a box: {list(box)} (x1 < x2 and y1 < y2 are needed)")
    return {0: [x1, y1, x2, y2]}
