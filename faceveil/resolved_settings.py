"""The run's derived settings (`Resolved`): what tasks read, resolved once from an AnonymizeConfig and its
RunState by `AnonymizeConfig.settings` (faceveil/config.py), and what one video's tasks need from them
(`VideoSettings`: the detection step and the tracker for a video's frame rate and size)."""

from __future__ import annotations

from dataclasses import dataclass

from faceveil.models.anonymizers import MaskSettings
from faceveil.models.detectors.base import DetectorSettings
from faceveil.models.tracking import TrackerSettings


@dataclass(frozen=True)
class VideoSettings:
    """What one video's tasks need beyond the run's models: frames from one detection to the next,
    and the tracker for detections that far apart."""

    step: int
    tracker: TrackerSettings


@dataclass(frozen=True)
class Resolved:
    """The run's derived settings, resolved once from an AnonymizeConfig and its RunState
    (`config.settings`, cached on it, so it travels with the config to the workers); hashable, so each
    worker builds its models once per run (pipeline/toolkit). Tasks read these, never
    `AnonymizeConfig`'s methods."""

    detector: str
    detector_settings: DetectorSettings
    second_look: DetectorSettings | None
    extra_detectors: tuple[tuple[str, DetectorSettings], ...]
    threshold: float
    method: str
    mask: MaskSettings
    embedder: str
    template_view: str
    checks: "object"  # validation.privacy.CheckSettings (frozen)
    detect_every: int | None
    detect_fps: float
    detect_mpx_per_s: float
    second_pass: bool
    track: bool
    max_gap: int
    extend: int | None
    replace: tuple = ()  # the replace anonymizer's options, sorted (key, value) pairs (AnonymizeConfig.masking.replace_options)
    pulse: str | None = None  # the pulse edit: "scrub" | "target:BPM" (None: none)

    def frame_step(self, fps: float, width: int = 0, height: int = 0) -> int:
        """Frames from one detection to the next for a video of this rate and size."""
        if self.detect_every:
            step = self.detect_every
        elif fps <= 0:
            step = 1
        else:
            by_budget = int(fps * width * height / 1e6 / self.detect_mpx_per_s + 1e-6)
            step = max(1, min(int(fps / self.detect_fps + 1e-6), by_budget))
        return max(1, step // 2) if self.second_pass else step

    def tracker(self, step: int = 1) -> TrackerSettings:
        """For detections `step` frames apart: gaps and end extension grow with the step; a track
        needs a face at the threshold or repeated weaker ones (every face, on the second pass)."""
        extend = self.extend if self.extend is not None else 2 * step + 2
        return TrackerSettings(
            max_gap=max(self.max_gap, 2 * step),
            extend=extend if self.track else 0,
            start_score=0.0 if self.second_pass else self.threshold,
        )

    def for_video(self, fps: float, width: int, height: int) -> VideoSettings:
        step = self.frame_step(fps, width, height)
        return VideoSettings(step, self.tracker(step))
