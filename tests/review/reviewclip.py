"""A tiny clip for the review tests: one real face (scikit-image's astronaut) moving across a
320x180 background, 1.2 s at 10 fps, with audio; and the detector-on-output check of its masking."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from faceveil.sample import _background, _sources, _write_clip

FACE_HEIGHT = 70


def write_clip(path: Path, seconds: float = 1.2, fps: int = 10, size=(320, 180)) -> Path:
    src = _sources()
    w, h = size
    actors = [("astronaut_face", FACE_HEIGHT, 0.0, (0.3 * w, 0.5 * h), (0.65 * w, 0.45 * h), 0.1)]
    _write_clip(path, src, actors, seconds, fps, size, _background(src["camera"], size), None, seed=3)
    return path


def faces_per_frame(path: Path, threshold: float = 0.3) -> dict[int, np.ndarray]:
    """frame -> boxes CenterFace finds at `threshold` (every frame of the video)."""
    from faceveil.models.detectors import DetectorSettings, create_detector
    from faceveil.storage.media import iter_frames, probe_video

    det = create_detector("centerface", DetectorSettings(threshold=threshold))
    info = probe_video(str(path))
    return {i: det.detect(rgb).boxes for i, rgb in iter_frames(str(path), info)}
