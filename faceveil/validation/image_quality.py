"""Utility metrics of an anonymized frame against its original (torchmetrics, no torchvision):
PSNR and SSIM outside the face regions (the background must come through near-lossless) and SSIM
inside them (how much of the face survived)."""
from __future__ import annotations

import math

import numpy as np


def region_mask(shape: tuple[int, ...], regions) -> np.ndarray:
    """(H, W) bool: True inside any integer xyxy region."""
    mask = np.zeros(shape[:2], bool)
    for x1, y1, x2, y2 in np.asarray(regions, np.int64).reshape(-1, 4):
        mask[max(y1, 0):max(y2, 0), max(x1, 0):max(x2, 0)] = True
    return mask


def _tensor(rgb: np.ndarray):
    import torch

    return torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1)[None].to(torch.float64)


def masked_psnr(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> float:
    """PSNR in dB over the pixels where `mask` is True (inf when they are equal, nan when none)."""
    import torch
    from torchmetrics.functional.image import peak_signal_noise_ratio

    if not mask.any():
        return math.nan
    x, y = (torch.from_numpy(v[mask].astype(np.float64)) for v in (a, b))
    if bool((x == y).all()):
        return math.inf
    return float(peak_signal_noise_ratio(y, x, data_range=255.0))


def masked_ssim(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> float:
    """Mean of the SSIM map (Gaussian window 11, sigma 1.5) over the pixels where `mask` is True."""
    from torchmetrics.functional.image import structural_similarity_index_measure

    if not mask.any():
        return math.nan
    _, full = structural_similarity_index_measure(_tensor(b), _tensor(a), data_range=255.0, return_full_image=True)
    return float(full[0].mean(0).numpy()[mask].mean())


def frame_quality(original: np.ndarray, anonymized: np.ndarray, regions) -> dict:
    """background_psnr, background_ssim (outside the regions) and face_ssim (inside them)."""
    if original.shape != anonymized.shape:
        raise ValueError(f"frames differ in shape: {original.shape} vs {anonymized.shape}")
    inside = region_mask(original.shape, regions)
    return {"background_psnr": masked_psnr(original, anonymized, ~inside),
            "background_ssim": masked_ssim(original, anonymized, ~inside),
            "face_ssim": masked_ssim(original, anonymized, inside)}
