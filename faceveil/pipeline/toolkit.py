"""The per-worker toolkit: the models one run's tasks use (detectors, the face finder with its
second look, anonymizer, embedder, the leak gate's detectors), built once per worker process from
the run's resolved settings and cached by them; weights load once per process."""

from __future__ import annotations

from functools import cached_property, lru_cache

import numpy as np

from faceveil.resolved_settings import Resolved
from faceveil.models.anonymizers import Anonymizer, MaskSettings, create_anonymizer
from faceveil.models.detections import Detections
from faceveil.models.detectors import Detector, DetectorSettings, create_detector


@lru_cache(maxsize=8)
def loaded_detector(name: str, settings: DetectorSettings) -> Detector:
    """One detector per process and settings (the weights loaded once)."""
    return create_detector(name, settings)


@lru_cache(maxsize=2)
def loaded_embedder(name: str):
    from faceveil.models.embedders import create_embedder

    return create_embedder(name)


@lru_cache(maxsize=8)
def loaded_anonymizer(name: str, mask: MaskSettings, options: tuple = ()) -> Anonymizer:
    """`options`: the replace anonymizer's (generator, checkpoint, checkpoint_sha256, id_margin,
    pool_seed), as sorted (key, value) pairs."""
    if not options:
        return create_anonymizer(name, mask)
    from dataclasses import replace as changed

    from faceveil.models.anonymizers import ANONYMIZERS
    from faceveil.models.replace_settings import ReplaceSettings

    o = dict(options)
    settings = ReplaceSettings()
    settings = changed(settings, **{k: o[k] for k in ("id_margin", "pool_seed") if o.get(k) is not None})
    kwargs = {"checkpoint": o["checkpoint"], "sha256": o.get("checkpoint_sha256")} if o.get("checkpoint") else {}
    return ANONYMIZERS.create(
        name, mask=mask, settings=settings, generator=o.get("generator") or "dcgan-digiface", generator_kwargs=kwargs
    )


class Toolkit:
    """One run's models on one worker. `find(rgb)`: the main detector, then the second look at the
    frame with those faces anonymized; on a second pass the leak gate's other detectors work beside
    the main one in both looks, so what the gate would confirm as a face is masked."""

    def __init__(self, s: Resolved):
        from faceveil.models.detectors.base import Ensemble

        self.settings = s
        self.detector = loaded_detector(s.detector, s.detector_settings)
        self.anonymizer = loaded_anonymizer(s.method, s.mask, s.replace)
        extra = [loaded_detector(name, d) for name, d in s.extra_detectors]
        self._first = Ensemble([self.detector, *extra])
        self._again = (
            Ensemble([loaded_detector(s.detector, s.second_look), *extra])
            if s.second_look
            else (self._first if extra else None)
        )

    def find(self, rgb: np.ndarray) -> Detections:
        from faceveil.models.second_look import second_look

        d = self._first.detect(rgb)
        return second_look(rgb, d, self.anonymizer, self._again) if self._again else d

    def photo_faces(self, rgb: np.ndarray) -> Detections:
        """The faces of a photo: `find`, held to the threshold (no tracker keeps weaker faces alive)
        except on a second pass; with tracking, one track per face (restored or forgotten alone). Where a
        new face is put in (replace), a box mostly inside a larger one is that face's part, not a face
        (filled on its own, it covered the new face); the leak gate still checks the output."""
        s = self.settings
        dets = self.find(rgb)
        if not s.second_pass:
            dets = dets[dets.scores >= s.threshold]
        if getattr(self.anonymizer, "shows_faces", False) and len(dets) > 1:  # a new face covers the parts inside it
            from faceveil.models.detections import nested

            dets = dets[~nested(dets)]
        if s.track:
            dets.track_ids = np.arange(len(dets), dtype=np.int64)
        return dets

    @property
    def device(self) -> str:
        """'cuda' or 'cpu': where `find` runs ('cuda' only when every detector it uses is on CUDA)."""
        from faceveil.models.device import combine

        return combine(e.device for e in (self._first, self._again) if e is not None)

    @cached_property
    def embedder(self):
        return loaded_embedder(self.settings.embedder)

    def gate(self, which: tuple[tuple[str, float], ...]) -> list[tuple[str, Detector]]:
        """(name, detector) of the leak gate's detectors at the given (name, threshold) pairs."""
        threads = self.settings.detector_settings.threads
        return [(name, loaded_detector(name, DetectorSettings(threshold=t, threads=threads))) for name, t in which]

    def warm(self) -> None:
        """Loads every model the run's tasks will use, before work arrives."""
        s = self.settings
        load = getattr(self.anonymizer, "load", None)
        if load is not None:  # replace: its generator, detector, embedder and pool of generated faces
            load()
        if s.checks.every_s > 0:  # the checks: the leak gate's detectors, the embedder, the metrics' imports
            self.gate(s.checks.gate)
            self.embedder.load()
            import skimage.metrics  # noqa: F401


@lru_cache(maxsize=4)
def toolkit(settings: Resolved) -> Toolkit:
    """The worker's toolkit for these settings (built on first use, then reused)."""
    return Toolkit(settings)
