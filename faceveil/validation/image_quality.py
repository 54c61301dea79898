"""Utility metrics of an anonymized frame against its original (numpy and scikit-image, no torch):
PSNR and SSIM outside the face regions (the background must come through near-lossless) and SSIM
inside them (how much of the face survived)."""

from __future__ import annotations

import math

import numpy as np


def region_mask(shape: tuple[int, ...], regions) -> np.ndarray:
    """(H, W) bool: True inside any integer xyxy region."""
    mask = np.zeros(shape[:2], bool)
    for x1, y1, x2, y2 in np.asarray(regions, np.int64).reshape(-1, 4):
        mask[max(y1, 0) : max(y2, 0), max(x1, 0) : max(x2, 0)] = True
    return mask


def psnr_from_mse(mse: float) -> float:
    """PSNR in dB of 8-bit images from their mean squared error (inf when it is 0)."""
    return math.inf if mse == 0 else 10 * math.log10(255.0**2 / mse)


def masked_psnr(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None) -> float:
    """PSNR in dB over the pixels where `mask` is True (all of them when None; inf when they are
    equal, nan when there are none)."""
    if mask is not None and not mask.any():
        return math.nan
    d = a.astype(np.int32) - b.astype(np.int32)
    return psnr_from_mse(float(np.square(d if mask is None else d[mask], dtype=np.int64).mean()))


SSIM_WINDOW = 2 * int(3.5 * 1.5 + 0.5) + 1  # scikit-image's window for gaussian_weights, sigma 1.5: 11 px


def ssim_map(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(H, W) SSIM map (Wang et al.: Gaussian window, sigma 1.5, population covariances; scikit-image,
    in float32; mean over the colour channels); NaN where the image is smaller than its 11 px window
    (Gaussian, sigma 1.5, truncated at 3.5 sigma: a sliver of a face at the frame's edge)."""
    from skimage.metrics import structural_similarity

    if min(a.shape[:2]) < SSIM_WINDOW:
        return np.full(a.shape[:2], np.nan, np.float32)

    _, full = structural_similarity(
        a.astype(np.float32),
        b.astype(np.float32),
        channel_axis=2,
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
        data_range=255.0,
        full=True,
    )
    return full.mean(2)


def _downsample(rgb: np.ndarray, f: int) -> np.ndarray:
    import cv2

    return rgb if f == 1 else cv2.resize(rgb, (rgb.shape[1] // f, rgb.shape[0] // f), interpolation=cv2.INTER_AREA)


def masked_ssim(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> float:
    """Mean SSIM over the pixels where `mask` is True, at the scale of Wang et al.'s reference
    implementation: frames averaged down by f = max(1, round(min(H, W) / 256)) first (a block counts
    when all its pixels are in the mask)."""
    f = max(1, round(min(a.shape[:2]) / 256))
    small = _downsample(mask.astype(np.float32), f) >= 1.0 - 1e-6
    if not small.any():
        return math.nan
    return float(ssim_map(_downsample(a, f), _downsample(b, f))[small].mean())


def region_ssim(a: np.ndarray, b: np.ndarray, region, margin: int = 5) -> float:
    """Mean SSIM inside one xyxy region (the map computed on the region plus `margin`; regions over
    383 px are first averaged down as in `masked_ssim`)."""
    h, w = a.shape[:2]
    x1, y1, x2, y2 = (int(v) for v in region)
    x1, y1, x2, y2 = max(x1, 0), max(y1, 0), min(x2, w), min(y2, h)
    if x2 <= x1 or y2 <= y1:
        return math.nan
    f = max(1, round(min(y2 - y1, x2 - x1) / 256))
    margin *= f
    cx1, cy1, cx2, cy2 = max(x1 - margin, 0), max(y1 - margin, 0), min(x2 + margin, w), min(y2 + margin, h)
    inside = np.zeros((cy2 - cy1, cx2 - cx1), np.float32)
    inside[y1 - cy1 : y2 - cy1, x1 - cx1 : x2 - cx1] = 1
    small = _downsample(inside, f) >= 1.0 - 1e-6
    full = ssim_map(_downsample(a[cy1:cy2, cx1:cx2], f), _downsample(b[cy1:cy2, cx1:cx2], f))
    return float(full[small].mean()) if small.any() else math.nan


def frame_quality(original: np.ndarray, anonymized: np.ndarray, regions) -> dict:
    """background_psnr, background_ssim (outside the regions) and face_ssim (inside them, per region, averaged)."""
    if original.shape != anonymized.shape:
        raise ValueError(f"frames differ in shape: {original.shape} vs {anonymized.shape}")
    regions = np.asarray(regions, np.int64).reshape(-1, 4)
    outside = ~region_mask(original.shape, regions)
    faces = [region_ssim(original, anonymized, r) for r in regions]
    faces = [v for v in faces if not math.isnan(v)]
    return {
        "background_psnr": masked_psnr(original, anonymized, outside),
        "background_ssim": masked_ssim(original, anonymized, outside),
        "face_ssim": float(np.mean(faces)) if faces else math.nan,
    }
