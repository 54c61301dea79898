"""dlib's 128-d ResNet face descriptor (weights shipped in `face_recognition_models`), aligned by
dlib's 5-point shape predictor run inside each detection box."""

from __future__ import annotations

import importlib.util
import threading
from pathlib import Path

import numpy as np

from faceveil.models.detections import Detections
from faceveil.models.embedders.base import EMBEDDERS, Embedder

SHAPE_FILE = "shape_predictor_5_face_landmarks.dat"
RESNET_FILE = "dlib_face_recognition_resnet_model_v1.dat"


def default_weights_dir() -> str:
    """The package's `models/` folder, found without importing it (its __init__ needs pkg_resources)."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("dlib face-recognition weights not found: install 'face_recognition_models'")
    return str(Path(next(iter(spec.submodule_search_locations))) / "models")


@EMBEDDERS.register("dlib-resnet")
class DlibResNet(Embedder):
    """`weights_dir` holds SHAPE_FILE and RESNET_FILE (default: the package's); `jitters` > 0 averages
    that many randomly jittered chips per face (slower, slightly more robust)."""

    name = "dlib-resnet"
    dim = 128
    # Measured on ../shared/data/faces (21 identities, 101 photos, CenterFace boxes): dlib's raw
    # descriptors have norms 1.3-1.6, so its L2 < 0.6 rule is not cosine 0.82; pairs at raw L2 ~0.6
    # have cosine ~0.917, and cosine 0.919 gives the same false-accept rate (0.2 %) as L2 0.6.
    same_person_threshold = 0.92

    def __init__(self, weights_dir: str | None = None, jitters: int = 0):
        folder = Path(weights_dir or default_weights_dir())
        self.weight_files = (str(folder / SHAPE_FILE), str(folder / RESNET_FILE))
        missing = [p for p in self.weight_files if not Path(p).is_file()]
        if missing:
            raise FileNotFoundError(f"dlib-resnet weights missing: {', '.join(missing)}")
        if jitters < 0:
            raise ValueError(f"jitters must be >= 0, got {jitters}")
        self.jitters = jitters
        self._models = None
        self._lock = threading.Lock()

    def _load(self):
        with self._lock:
            if self._models is None:
                import dlib

                self._models = (
                    dlib,
                    dlib.shape_predictor(self.weight_files[0]),
                    dlib.face_recognition_model_v1(self.weight_files[1]),
                )
        return self._models

    def load(self) -> None:
        self._load()

    @property
    def device(self) -> str:
        """dlib uses CUDA by itself when it was built with it and sees a card."""
        from faceveil.models.device import dlib_device

        return dlib_device()

    def __getstate__(self):  # dlib models are loaded again where the embedder is unpickled
        return {**self.__dict__, "_models": None, "_lock": None}

    def __setstate__(self, state):
        self.__dict__.update(state, _lock=threading.Lock())

    def _embed(self, rgb: np.ndarray, dets: Detections) -> np.ndarray:
        dlib, predictor, resnet = self._models or self._load()
        shapes = dlib.full_object_detections()
        for x1, y1, x2, y2 in np.round(dets.boxes).astype(int).tolist():
            shapes.append(predictor(rgb, dlib.rectangle(x1, y1, max(x2 - 1, x1), max(y2 - 1, y1))))
        return np.array(resnet.compute_face_descriptor(rgb, shapes, self.jitters), np.float32)
