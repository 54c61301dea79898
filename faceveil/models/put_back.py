"""Putting a generated face back into a photo: similarity-aligned to the original's 5 landmarks (then
bent so its landmarks land on the original's), colour moved to the original's (Lab), blurred to the
original's sharpness, alpha-blended with a feathered edge inside an ellipse drawn from the landmarks.
Every pixel outside that mask is left exactly as it was."""

from __future__ import annotations

import cv2
import numpy as np

from faceveil.models.face_attributes import eye_distance, rgb_to_lab, sharpness, similarity, skin_mask


def _ellipse(landmarks: np.ndarray):
    """(centre, full axes, angle in degrees) of the face ellipse: from the eyebrows to the chin,
    cheek to cheek (2.2 eye distances wide), turned with the eye line."""
    lm = np.asarray(landmarks, np.float64).reshape(5, 2)
    d = max(eye_distance(lm), 1.0)
    u = (lm[1] - lm[0]) / d
    v = np.array([-u[1], u[0]])
    eye_mid, mouth_mid = (lm[0] + lm[1]) / 2, (lm[3] + lm[4]) / 2
    m = max(float((mouth_mid - eye_mid) @ v), 0.6 * d)
    top, bottom = -0.62 * d, m + 0.55 * d
    centre = eye_mid + v * (top + bottom) / 2
    return (float(centre[0]), float(centre[1])), (2 * 1.1 * d, bottom - top), float(np.degrees(np.arctan2(u[1], u[0])))


def face_mask(shape: tuple[int, int], landmarks: np.ndarray) -> np.ndarray:
    """(H, W) bool: the ellipse a new face goes in (see `_ellipse`)."""
    mask = np.zeros(shape[:2], np.uint8)
    cv2.ellipse(mask, _ellipse(landmarks), 1, -1)
    return mask.astype(bool)


def _bounds(landmarks: np.ndarray) -> tuple[int, int, int, int]:
    """The face ellipse's xyxy bounding box (integers, not clipped)."""
    (cx, cy), (ax, ay), angle = _ellipse(landmarks)
    pts = cv2.ellipse2Poly(
        (int(round(cx)), int(round(cy))),
        (int(np.ceil(ax / 2)) + 1, int(np.ceil(ay / 2)) + 1),
        int(round(angle)),
        0,
        360,
        5,
    )
    x, y, w, h = cv2.boundingRect(pts)
    return x, y, x + w, y + h


def put_back(
    rgb: np.ndarray,
    landmarks: np.ndarray,
    face: np.ndarray,
    face_landmarks: np.ndarray,
    limit=None,
    feather: float = 0.12,
    match_blur: bool = True,
    warp_landmarks: bool = True,
) -> np.ndarray:
    """Puts `face` (an RGB image whose 5 landmarks are `face_landmarks`) over the face with
    `landmarks` in `rgb`, in place, and returns the (H, W) bool mask it changed pixels within:
    similarity-aligned (cv2.estimateAffinePartial2D over the 5 points), then, with `warp_landmarks`, bent
    by a smooth radial-basis displacement that puts each of its 5 landmarks exactly on the original's
    (the original's pose and expression at the landmarks), colour moved to the original's skin (Lab mean shift, contrast matched), blurred
    to the original's sharpness, alpha-blended with a feathered edge inside the landmark ellipse
    (clipped to `limit`, an xyxy region, and to where the warped face has pixels). Nothing outside
    the mask changes."""
    h, w = rgb.shape[:2]
    lm = np.asarray(landmarks, np.float32).reshape(5, 2)
    d = max(eye_distance(lm), 1.0)
    full = np.zeros((h, w), bool)
    b = _bounds(lm)  # work in the ellipse's bounding box
    x0, y0 = max(b[0] - 2, 0), max(b[1] - 2, 0)
    x1, y1 = min(b[2] + 2, w), min(b[3] + 2, h)
    if limit is not None:
        x0, y0, x1, y1 = max(x0, int(limit[0])), max(y0, int(limit[1])), min(x1, int(limit[2])), min(y1, int(limit[3]))
    if x1 <= x0 or y1 <= y0:
        return full
    crop = rgb[y0:y1, x0:x1]
    ch, cw = crop.shape[:2]
    local = lm - np.float32([x0, y0])
    mask = face_mask((ch, cw), local)
    m = similarity(face_landmarks, local)
    warped, valid = _warp(face, m, (cw, ch), local, face_landmarks if warp_landmarks else None, d)
    mask &= cv2.erode(valid, np.ones((3, 3), np.uint8)).astype(bool)
    if not mask.any():
        return full
    warped = _match_colour(warped, crop, local, mask)
    if match_blur:
        warped = _match_blur(warped, crop, local, d)
    soft = cv2.GaussianBlur(mask.astype(np.float32), (0, 0), max(0.5, feather * d))
    alpha = np.clip(2 * soft - 1, 0, 1) * mask
    out = crop.astype(np.float32) + alpha[..., None] * (warped.astype(np.float32) - crop)
    crop[mask] = np.clip(out[mask] + 0.5, 0, 255).astype(np.uint8)
    full[y0:y1, x0:x1] = mask
    return full


def _warp(
    face: np.ndarray, m: np.ndarray, size: tuple[int, int], dst: np.ndarray, src: np.ndarray | None, d: float
) -> tuple[np.ndarray, np.ndarray]:
    """`face` resampled into a (w, h) = `size` crop by the similarity `m`; with landmarks `src` (in
    `face`) and `dst` (in the crop), also displaced so the aligned landmarks land on `dst`: a Gaussian
    radial-basis field (width 0.7 eye distances) through the 5 residuals. Returns (image, valid mask)."""
    cw, ch = size
    ys, xs = np.mgrid[0:ch, 0:cw].astype(np.float32)
    if src is not None:
        aligned = np.asarray(src, np.float32) @ m[:, :2].T + m[:, 2]
        resid = np.asarray(dst, np.float32) - aligned  # where each landmark must still move
        two_s2 = 2 * (0.7 * d) ** 2
        k = np.exp(-((dst[:, None] - dst[None]) ** 2).sum(-1) / two_s2)
        wts = np.linalg.solve(k + 1e-6 * np.eye(5), resid)
        phi = np.exp(-((xs[..., None] - dst[:, 0]) ** 2 + (ys[..., None] - dst[:, 1]) ** 2) / two_s2)
        disp = phi @ wts
        xs, ys = xs - disp[..., 0], ys - disp[..., 1]
    inv = cv2.invertAffineTransform(m)
    mx = (inv[0, 0] * xs + inv[0, 1] * ys + inv[0, 2]).astype(np.float32)
    my = (inv[1, 0] * xs + inv[1, 1] * ys + inv[1, 2]).astype(np.float32)
    r = face.shape[0] - 1
    warped = cv2.remap(face, mx, my, cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)
    valid = ((mx >= 0) & (mx <= face.shape[1] - 1) & (my >= 0) & (my <= r)).astype(np.uint8)
    return warped, valid


def _match_colour(warped: np.ndarray, crop: np.ndarray, lm: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The warped face in the original's colours: its Lab moved by the difference of the skin means
    (cheeks and forehead), its contrast scaled to the original's inside the mask (by at most 1.5x)."""
    skin = skin_mask(crop.shape, lm) & mask
    region = skin if skin.sum() >= 8 else mask
    lab_w, lab_o = rgb_to_lab(warped), rgb_to_lab(crop)
    mw, mo = lab_w[region].mean(0), lab_o[region].mean(0)
    sw, so = lab_w[mask].std(0) + 1e-3, lab_o[mask].std(0) + 1e-3
    k = np.clip(so / sw, 0.67, 1.5)
    lab = (lab_w - mw) * k + mo
    lab[..., 0] = np.clip(lab[..., 0], 0, 100)
    lab[..., 1:] = np.clip(lab[..., 1:], -127, 127)
    back = cv2.cvtColor(lab.reshape(-1, 1, 3), cv2.COLOR_Lab2RGB).reshape(warped.shape)
    return np.clip(back * 255 + 0.5, 0, 255).astype(np.uint8)


def _match_blur(warped: np.ndarray, crop: np.ndarray, lm: np.ndarray, d: float) -> np.ndarray:
    """The warped face blurred until it is no sharper than the original (both measured at one scale)."""
    target = sharpness(crop, lm)
    if sharpness(warped, lm) <= target + 0.15:
        return warped
    px = d / (35.2 * 48 / 112)  # frame pixels per pixel of the sharpness scale
    out = warped
    for sigma in (0.5, 0.8, 1.2, 1.8, 2.6):
        out = cv2.GaussianBlur(warped, (0, 0), sigma * px)
        if sharpness(out, lm) <= target + 0.15:
            break
    return out
