"""Person segmentation: MediaPipe's selfie segmentation model (256x256, the person's probability per
pixel) run offline with LiteRT (models/litert), on a square window around one person's face."""

from __future__ import annotations

import cv2
import numpy as np

from faceveil.models.litert import LiteRTModel, mediapipe_model

INPUT = 256  # the model's input side


class PersonSegmenter(LiteRTModel):
    """P(person) per pixel of a square window of a frame (models/litert.LiteRTModel: loaded on first use)."""

    WHAT = "person segmentation model"

    def default_path(self) -> str:
        return mediapipe_model("modules/selfie_segmentation/selfie_segmentation.tflite")

    def probability(self, rgb: np.ndarray, window) -> np.ndarray:
        """float32 (y2 - y1, x2 - x1) person probability over xyxy `window` (integers, a square reads
        best; parts outside the frame are the frame's edge pixels repeated)."""
        x1, y1, x2, y2 = (int(v) for v in window)
        w, h = max(1, x2 - x1), max(1, y2 - y1)
        m = np.float32([[INPUT / w, 0, -x1 * INPUT / w], [0, INPUT / h, -y1 * INPUT / h]])
        crop = cv2.warpAffine(
            np.ascontiguousarray(rgb), m, (INPUT, INPUT), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REPLICATE
        )
        p = self.run((crop.astype(np.float32) / 255.0)[None])[0]
        p = p.reshape(INPUT, INPUT).astype(np.float32)
        return cv2.resize(p, (w, h), interpolation=cv2.INTER_LINEAR)
