"""Face detectors behind one interface; `create_detector(name, settings)` picks one by name."""

from faceveil.models.detectors.base import DETECTORS, Detector, DetectorSettings
from faceveil.models.detectors import blazeface, centerface, dlib_hog  # noqa: F401  (registers)

DEFAULT_DETECTOR = "centerface"


def create_detector(name: str = DEFAULT_DETECTOR, settings: DetectorSettings = DetectorSettings()) -> Detector:
    return DETECTORS.create(name, settings=settings)


__all__ = ["DETECTORS", "DEFAULT_DETECTOR", "Detector", "DetectorSettings", "create_detector"]
