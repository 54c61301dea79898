"""MediaPipe model files run offline with LiteRT (ai-edge-litert): the .tflite files shipped inside the
`mediapipe` package (installed with --no-deps for its model files only; mediapipe is never imported)."""

from __future__ import annotations

import importlib.util
import threading
from pathlib import Path

INSTALL = "pip install --no-deps mediapipe==0.10.14 ai-edge-litert"


class ModelUnavailable(RuntimeError):
    """A MediaPipe model file or its runtime (ai-edge-litert) is missing or does not load."""


def mediapipe_model(relpath: str) -> str:
    """The path of `relpath` (e.g. "modules/face_landmark/face_landmark.tflite") inside the installed
    mediapipe package, found without importing it (its dependencies are not installed)."""
    spec = importlib.util.find_spec("mediapipe")
    if spec is None or not spec.submodule_search_locations:
        raise ModelUnavailable(f"{Path(relpath).name} not found: the 'mediapipe' package is not installed ({INSTALL})")
    return str(Path(next(iter(spec.submodule_search_locations))) / relpath)


def interpreter(path: str, threads: int = 1, what: str = "model"):
    """A LiteRT interpreter for the .tflite file at `path`, tensors allocated; ModelUnavailable naming
    `what` and the file when the file or the runtime is missing or the file does not load."""
    if not Path(path).is_file():
        raise ModelUnavailable(f"{what} missing at {path} ({INSTALL})")
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError as e:
        raise ModelUnavailable(f"ai-edge-litert is not installed, cannot run {path} ({INSTALL})") from e
    try:
        interp = Interpreter(model_path=path, num_threads=max(1, threads))
        interp.allocate_tensors()
    except Exception as e:  # noqa: BLE001 - a corrupt or foreign file
        raise ModelUnavailable(f"{what} at {path} does not load: {e}") from e
    return interp


class LiteRTModel:
    """One .tflite model, its interpreter loaded on first use (`run`) and kept; calls are serialised.
    Subclasses name the model (`WHAT`), its default file (`default_path`), the error they raise when it
    is unavailable (`UNAVAILABLE`, a ModelUnavailable) and read its outputs."""

    WHAT = "model"
    UNAVAILABLE = ModelUnavailable

    def __init__(self, path: str | None = None, threads: int = 1):
        self.path = path
        self.threads = threads
        self._interp = None
        self._lock = threading.Lock()

    def default_path(self) -> str:
        raise NotImplementedError

    def _interpreter(self):
        if self._interp is None:
            try:
                self._interp = interpreter(self.path or self.default_path(), self.threads, self.WHAT)
            except ModelUnavailable as e:
                if isinstance(e, self.UNAVAILABLE):
                    raise
                raise self.UNAVAILABLE(str(e)) from None
        return self._interp

    def run(self, x) -> list:
        """Every output tensor (a copy, in the model's output order) for input `x`."""
        interp = self._interpreter()
        with self._lock:
            interp.set_tensor(interp.get_input_details()[0]["index"], x)
            interp.invoke()
            return [interp.get_tensor(o["index"]) for o in interp.get_output_details()]
