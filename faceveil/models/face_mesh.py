"""MediaPipe Face Mesh (468 dense landmarks) run offline with LiteRT (models/litert).

Index lists follow MediaPipe's canonical face mesh topology (face_mesh_connections.py), as ordered
polygons. LEFT/RIGHT are the person's own: LEFT_EYE and LEFT_EYEBROW lie on the image-right side of a
(non-mirrored) frontal photo, RIGHT_* on the image-left side.
"""

from __future__ import annotations

import cv2
import numpy as np

from faceveil.models.litert import LiteRTModel, ModelUnavailable, mediapipe_model

INPUT = 192  # the model's input side
ROI_SCALE = 1.5  # crop side over the face box's longer side (MediaPipe's detection-to-ROI scale)

FACE_OVAL = [
    10,
    338,
    297,
    332,
    284,
    251,
    389,
    356,
    454,
    323,
    361,
    288,
    397,
    365,
    379,
    378,
    400,
    377,
    152,
    148,
    176,
    149,
    150,
    136,
    172,
    58,
    132,
    93,
    234,
    127,
    162,
    21,
    54,
    103,
    67,
    109,
]
LEFT_EYE = [263, 249, 390, 373, 374, 380, 381, 382, 362, 398, 384, 385, 386, 387, 388, 466]
RIGHT_EYE = [33, 7, 163, 144, 145, 153, 154, 155, 133, 173, 157, 158, 159, 160, 161, 246]
LEFT_EYEBROW = [276, 283, 282, 295, 285, 336, 296, 334, 293, 300]  # lower edge outer->inner, upper back
RIGHT_EYEBROW = [46, 53, 52, 65, 55, 107, 66, 105, 63, 70]
LIPS_OUTER = [61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291, 409, 270, 269, 267, 0, 37, 39, 40, 185]
CHIN = 152  # bottom of the chin, on the oval
FOREHEAD_TOP = 10  # top of the forehead, on the oval


class FaceMeshUnavailable(ModelUnavailable):
    """The face landmark model or its runtime (ai-edge-litert) is missing or does not load."""


def default_model() -> str:
    """face_landmark.tflite inside the installed mediapipe package."""
    try:
        return mediapipe_model("modules/face_landmark/face_landmark.tflite")
    except ModelUnavailable as e:
        raise FaceMeshUnavailable(str(e)) from None


def roi_transform(box, landmarks) -> np.ndarray:
    """The 2x3 affine taking image pixels to the model's 192 px crop: a square of ROI_SCALE x the box's
    longer side centred on the box, turned so that the eye line is horizontal. NaN landmarks fall back
    to typical ones for the box."""
    x1, y1, x2, y2 = (float(v) for v in box)
    lm = np.asarray(landmarks, np.float64).reshape(5, 2) if landmarks is not None else np.full((5, 2), np.nan)
    if not np.isfinite(lm[:2]).all():
        from faceveil.models.face_attributes import landmarks_from_box

        lm = landmarks_from_box(box).astype(np.float64)
    dx, dy = lm[1] - lm[0]
    side = ROI_SCALE * max(x2 - x1, y2 - y1, 1.0)
    centre = ((x1 + x2) / 2, (y1 + y2) / 2)
    m = cv2.getRotationMatrix2D(centre, float(np.degrees(np.arctan2(dy, dx))), INPUT / side)
    m[:, 2] += (INPUT / 2 - centre[0], INPUT / 2 - centre[1])
    return m


class FaceMesh(LiteRTModel):
    """468 face landmarks in image pixels for one detected face (models/litert.LiteRTModel: loaded on
    first use; FaceMeshUnavailable without the model)."""

    WHAT = "face landmark model"
    UNAVAILABLE = FaceMeshUnavailable

    def default_path(self) -> str:
        return default_model()

    def points(self, rgb: np.ndarray, box, landmarks=None) -> tuple[np.ndarray, float]:
        """(468, 2) float32 points in image pixels and the face-presence score in [0, 1] for the face in
        xyxy `box` with its (5, 2) landmarks (image-left eye first; NaN or None: from the box)."""
        m = roi_transform(box, landmarks)
        crop = cv2.warpAffine(
            np.ascontiguousarray(rgb), m, (INPUT, INPUT), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
        )
        x = (crop.astype(np.float32) / 255.0)[None]  # RGB in [0, 1]
        outs = self.run(x)
        mesh = next(o for o in outs if o.size == 468 * 3).reshape(468, 3)[:, :2].astype(np.float64)
        logit = float(next(o for o in outs if o.size == 1).ravel()[0])
        inv = cv2.invertAffineTransform(m)
        pts = mesh @ inv[:, :2].T + inv[:, 2]
        return pts.astype(np.float32), float(1.0 / (1.0 + np.exp(-np.clip(logit, -60, 60))))
