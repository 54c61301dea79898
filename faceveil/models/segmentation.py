"""Person segmentation: MediaPipe's selfie segmentation model (256x256, the person's probability per
pixel) run offline with LiteRT (models/litert), on a square window around one person's face."""
from __future__ import annotations

import threading

import cv2
import numpy as np

from faceveil.models.litert import interpreter, mediapipe_model

INPUT = 256  # the model's input side


class PersonSegmenter:
    """P(person) per pixel of a square window of a frame. The interpreter loads on first use and is
    kept (calls on it are serialised)."""

    def __init__(self, path: str | None = None, threads: int = 1):
        self.path = path
        self.threads = threads
        self._interp = None
        self._lock = threading.Lock()

    def _interpreter(self):
        if self._interp is None:
            path = self.path or mediapipe_model("modules/selfie_segmentation/selfie_segmentation.tflite")
            interp = interpreter(path, self.threads, "person segmentation model")
            self._input = interp.get_input_details()[0]["index"]
            self._output = interp.get_output_details()[0]["index"]
            self._interp = interp
        return self._interp

    def probability(self, rgb: np.ndarray, window) -> np.ndarray:
        """float32 (y2 - y1, x2 - x1) person probability over xyxy `window` (integers, a square reads
        best; parts outside the frame are the frame's edge pixels repeated)."""
        interp = self._interpreter()
        x1, y1, x2, y2 = (int(v) for v in window)
        w, h = max(1, x2 - x1), max(1, y2 - y1)
        m = np.float32([[INPUT / w, 0, -x1 * INPUT / w], [0, INPUT / h, -y1 * INPUT / h]])
        crop = cv2.warpAffine(np.ascontiguousarray(rgb), m, (INPUT, INPUT), flags=cv2.INTER_AREA,
                              borderMode=cv2.BORDER_REPLICATE)
        with self._lock:
            interp.set_tensor(self._input, (crop.astype(np.float32) / 255.0)[None])
            interp.invoke()
            p = interp.get_tensor(self._output).reshape(INPUT, INPUT).astype(np.float32)
        return cv2.resize(p, (w, h), interpolation=cv2.INTER_LINEAR)
