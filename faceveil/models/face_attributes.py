"""Face attributes computable offline from an RGB frame and a face's 5 landmarks (CenterFace order:
the subject's right eye, left eye, nose tip, right and left mouth corner): head pose (yaw, pitch,
roll, from the landmarks), landmark geometry once position, scale and roll are taken out (pose and
expression: how far the nose sits off-centre, how wide the mouth is), skin colour (CIE Lab mean over
cheeks and forehead), face size and blur. The attribute space identity replacement pairs faces in,
and what it is measured by."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

# The 5-point template of 112x112 aligned face crops (ArcFace's), the canonical frame for geometry.
TEMPLATE_112 = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]], np.float32
)
# A generic 3D face for the same 5 points (mm; x to the image's right, y down, z away from the camera;
# eyes 62 mm apart, seen from the front it projects onto the template above), for head pose by PnP.
# Only differences of poses estimated the same way are used as errors.
MODEL_3D = np.array(
    [[-31.0, -35.4, 27.0], [31.0, -35.4, 27.0], [0.0, 0.0, 0.0], [-25.7, 36.1, 20.0], [25.7, 36.1, 20.0]], np.float64
)
# Where the 5 landmarks sit in a CenterFace box, as fractions of its width and height (for boxes
# from a detector that gives no landmarks).
BOX_LANDMARKS = np.array([[0.32, 0.42], [0.68, 0.42], [0.50, 0.58], [0.36, 0.76], [0.64, 0.76]], np.float32)


def landmarks_from_box(box) -> np.ndarray:
    """(5, 2) typical landmarks of a frontal face in an xyxy box."""
    x1, y1, x2, y2 = np.asarray(box, np.float32)
    return np.float32([x1, y1]) + BOX_LANDMARKS * np.float32([x2 - x1, y2 - y1])


def eye_distance(landmarks: np.ndarray) -> float:
    lm = np.asarray(landmarks, np.float64)
    return float(np.linalg.norm(lm[1] - lm[0]))


def similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The 2x3 similarity (rotation, uniform scale, shift) taking points `src` to `dst` by least
    squares over all of them (cv2.estimateAffinePartial2D, every point an inlier)."""
    m, _ = cv2.estimateAffinePartial2D(
        np.asarray(src, np.float32).reshape(-1, 1, 2),
        np.asarray(dst, np.float32).reshape(-1, 1, 2),
        method=cv2.RANSAC,
        ransacReprojThreshold=1e6,
        refineIters=20,
    )
    if m is None:
        raise ValueError("no similarity between these landmarks")
    return m


def head_pose(
    landmarks: np.ndarray, focal: float | None = None, centre: tuple[float, float] | None = None
) -> np.ndarray:
    """(yaw, pitch, roll) in degrees of one face from its 5 landmarks: the generic 3D face fitted by
    PnP. The camera defaults to one that sees every face alike whatever its size and place in the
    frame (focal length 12 eye distances, about 75 cm away; principal point at the face), so poses of
    faces in frames of different sizes, and of generated faces, compare. Yaw is positive when the face
    turns towards the image's right, pitch when it tilts down, roll when it leans clockwise."""
    lm = np.asarray(landmarks, np.float64).reshape(5, 2)
    d = max(eye_distance(lm), 1e-3)
    focal = float(focal or 12.0 * d)
    centre = tuple(lm.mean(0)) if centre is None else centre
    cam = np.array([[focal, 0, centre[0]], [0, focal, centre[1]], [0, 0, 1]], np.float64)
    t0 = np.array([[(lm[2, 0] - centre[0]) * 62.0 / d], [(lm[2, 1] - centre[1]) * 62.0 / d], [focal * 62.0 / d]])
    ok, rvec, tvec = cv2.solvePnP(MODEL_3D, lm, cam, None, np.zeros((3, 1)), t0, True, cv2.SOLVEPNP_ITERATIVE)
    if not ok:
        return np.full(3, np.nan)
    r, _ = cv2.Rodrigues(rvec)
    yaw = np.degrees(np.arcsin(np.clip(-r[2, 0], -1, 1)))
    pitch = np.degrees(np.arctan2(r[2, 1], r[2, 2]))
    roll = np.degrees(np.arctan2(r[1, 0], r[0, 0]))
    return np.array([-yaw, pitch, roll])


def geometry(landmarks: np.ndarray) -> np.ndarray:
    """(10,) the landmarks in the canonical frame (similarity to the template, in eye distances):
    what is left once position, scale and roll are gone (yaw, pitch, expression)."""
    lm = np.asarray(landmarks, np.float32).reshape(5, 2)
    eye = lm[1] - lm[0]
    d = max(float(np.linalg.norm(eye)), 1e-6)
    c, s = eye / d
    rot = np.array([[c, s], [-s, c]], np.float32)  # the eye line made horizontal
    mid = (lm[0] + lm[1]) / 2
    return ((lm - mid) @ rot.T / d).reshape(-1)


def skin_mask(shape: tuple[int, int], landmarks: np.ndarray) -> np.ndarray:
    """(H, W) bool: two cheek discs (below each eye, outside the nose) and a forehead disc, sized by
    the eye distance; where skin colour is read."""
    lm = np.asarray(landmarks, np.float32).reshape(5, 2)
    d = eye_distance(lm)
    eye_mid, mouth_mid = (lm[0] + lm[1]) / 2, (lm[3] + lm[4]) / 2
    down = mouth_mid - eye_mid
    m = np.zeros(shape[:2], np.uint8)
    for eye, mouth in ((lm[0], lm[3]), (lm[1], lm[4])):
        cheek = 0.55 * eye + 0.45 * mouth + 0.12 * (eye - lm[2])
        cv2.circle(m, tuple(int(round(v)) for v in cheek), max(1, int(round(0.16 * d))), 1, -1)
    forehead = eye_mid - 0.42 * down
    cv2.circle(m, tuple(int(round(v)) for v in forehead), max(1, int(round(0.17 * d))), 1, -1)
    return m.astype(bool)


def rgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """CIE Lab (D65; L in [0, 100]) of uint8 sRGB pixels (any shape ending in 3)."""
    a = np.asarray(rgb, np.uint8)
    flat = a.reshape(-1, 1, 3).astype(np.float32) / 255
    return cv2.cvtColor(flat, cv2.COLOR_RGB2Lab).reshape(a.shape).astype(np.float32)


def skin_lab(rgb: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """(3,) mean Lab of the skin mask's pixels (NaN when the mask lies outside the frame)."""
    m = skin_mask(rgb.shape, landmarks)
    if not m.any():
        return np.full(3, np.nan, np.float32)
    return rgb_to_lab(rgb[m]).mean(0)


def delta_e2000(lab1: np.ndarray, lab2: np.ndarray) -> np.ndarray:
    """CIEDE2000 colour difference."""
    from skimage.color import deltaE_ciede2000

    return deltaE_ciede2000(np.asarray(lab1, np.float64), np.asarray(lab2, np.float64))


def sharpness(rgb: np.ndarray, landmarks: np.ndarray, size: int = 48) -> float:
    """log(1 + variance of the Laplacian) of the inner face resampled so the eyes are `size`/2.4 px
    apart: blur on a scale that does not depend on the face's size in the frame."""
    lm = np.asarray(landmarks, np.float32).reshape(5, 2)
    dst = TEMPLATE_112 * (size / 112.0)
    m = similarity(lm, dst)
    crop = cv2.warpAffine(rgb, m, (size, size), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REPLICATE)
    grey = cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY).astype(np.float32)
    inner = grey[size // 4 : size - size // 8, size // 6 : size - size // 6]
    return float(np.log1p(cv2.Laplacian(inner, cv2.CV_32F).var()))


@dataclass(frozen=True)
class FaceAttributes:
    """One face's attributes: pose (yaw, pitch, roll; degrees), geometry (10,), skin Lab (3,), size
    (eye distance, px) and sharpness (see `sharpness`)."""

    pose: np.ndarray
    geometry: np.ndarray
    skin: np.ndarray
    size: float
    sharpness: float

    def vector(self) -> np.ndarray:
        """The point in attribute space faces are paired in: yaw and pitch (per 10 degrees), geometry
        (per 0.05 eye distances), skin Lab (per 5 units of L, a, b), sharpness (per 0.5). Roll, size
        and position are not in it: the similarity alignment that puts a face back reproduces them."""
        return np.concatenate(
            [self.pose[:2] / 10.0, self.geometry / 0.05, self.skin / 5.0, [self.sharpness / 0.5]]
        ).astype(np.float32)


def face_attributes(rgb: np.ndarray, landmarks: np.ndarray) -> FaceAttributes:
    """The attributes of the face with these landmarks in `rgb`."""
    lm = np.asarray(landmarks, np.float32).reshape(5, 2)
    return FaceAttributes(head_pose(lm), geometry(lm), skin_lab(rgb, lm), eye_distance(lm), sharpness(rgb, lm))
