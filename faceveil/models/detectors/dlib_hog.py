"""dlib's HOG + linear SVM frontal face detector (compiled into dlib-bin): the fast frontal path."""

from __future__ import annotations

import numpy as np

from faceveil.models.detections import Detections
from faceveil.models.detectors.base import DETECTORS, Detector, DetectorSettings


@DETECTORS.register("dlib-hog")
class DlibHOG(Detector):
    """Scores are the SVM margin squashed to (0, 1) by a logistic; 0.5 is dlib's own default cut."""

    name = "dlib-hog"
    default_threshold = 0.5

    def __init__(self, settings: DetectorSettings = DetectorSettings(), upsample: int = 1):
        super().__init__(settings)
        import dlib

        self._dlib = dlib
        self._det = dlib.get_frontal_face_detector()
        self.upsample = upsample

    @property
    def weights_id(self) -> str:
        return f"dlib-{self._dlib.__version__}:frontal_face_detector"

    def _detect(self, rgb: np.ndarray) -> Detections:
        t = min(max(self.threshold, 1e-6), 1 - 1e-6)
        margin = float(np.log(t / (1 - t)))
        rects, margins, _ = self._det.run(np.ascontiguousarray(rgb), self.upsample, margin)
        if not rects:
            return Detections.empty()
        boxes = np.array([[r.left(), r.top(), r.right() + 1, r.bottom() + 1] for r in rects], np.float32)
        scores = 1 / (1 + np.exp(-np.asarray(margins, np.float32)))
        return Detections(boxes, scores)
