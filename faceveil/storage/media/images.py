"""Images with Pillow: read_image hands out RGB in display orientation (EXIF transpose applied),
write_image stores it back in the original orientation, format, mode and colour profile."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from faceveil.storage.media.probe import MediaError, _check_file


_IMAGE_FORMATS = {"JPEG", "PNG", "WEBP"}
_ORIENTATION = 0x0112


@dataclass
class ImageMeta:
    format: str  # PIL format name: "JPEG", "PNG", "WEBP"
    orientation: int  # EXIF orientation (1 if none)
    mode: str  # original PIL mode
    icc_profile: bytes | None = None  # kept on write so colours render the same


def read_image(path: str, *, max_pixels: int = 16384 * 16384) -> tuple[np.ndarray, ImageMeta]:
    """RGB uint8 HxWx3 in display orientation (EXIF transpose applied) and what write_image needs."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    path = str(path)
    _check_file(path)
    Image.MAX_IMAGE_PIXELS = max(max_pixels, Image.MAX_IMAGE_PIXELS or 0)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                if img.format not in _IMAGE_FORMATS:
                    raise MediaError(path, f"unsupported image format {img.format}")
                if img.width * img.height > max_pixels:
                    raise MediaError(path, f"resolution {img.width}x{img.height} over the limit of {max_pixels} pixels")
                if getattr(img, "n_frames", 1) > 1:
                    raise MediaError(path, "animated images are not supported")
                orientation = int(img.getexif().get(_ORIENTATION, 1) or 1)
                meta = ImageMeta(
                    img.format, orientation if 1 <= orientation <= 8 else 1, img.mode, img.info.get("icc_profile")
                )
                img.load()
                if img.mode in ("I;16", "I;16B", "I;16L", "I"):
                    a = np.asarray(img, dtype=np.uint32)
                    img = Image.fromarray((a >> 8 if a.max() > 255 else a).astype(np.uint8), "L")
                img = ImageOps.exif_transpose(img) if orientation != 1 else img
                rgb = np.array(img.convert("RGB"), dtype=np.uint8)  # a writable copy
    except MediaError:
        raise
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as e:
        raise MediaError(path, f"image too large ({e})") from None
    except UnidentifiedImageError:
        raise MediaError(path, "not an image file or corrupt header") from None
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        raise MediaError(path, f"corrupt or truncated image ({e})") from None
    return rgb, meta


# inverse of ImageOps.exif_transpose: display orientation back to storage orientation
_UNDO = {
    2: "FLIP_LEFT_RIGHT",
    3: "ROTATE_180",
    4: "FLIP_TOP_BOTTOM",
    5: "TRANSPOSE",
    6: "ROTATE_90",
    7: "TRANSVERSE",
    8: "ROTATE_270",
}


def write_image(path: str, rgb: np.ndarray, meta: ImageMeta, *, lossless: bool = False) -> None:
    """Save in meta.format, stored in the original orientation, with an EXIF block of only Orientation."""
    from PIL import Image

    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected uint8 HxWx3, got {rgb.dtype} {rgb.shape}")
    img = Image.fromarray(np.ascontiguousarray(rgb), "RGB")
    if meta.orientation in _UNDO:
        img = img.transpose(getattr(Image.Transpose, _UNDO[meta.orientation]))
    if meta.mode == "L":
        img = img.convert("L")
    kw: dict = {}
    if meta.orientation != 1:
        exif = Image.Exif()
        exif[_ORIENTATION] = meta.orientation
        kw["exif"] = exif.tobytes()
    if meta.icc_profile:
        kw["icc_profile"] = meta.icc_profile
    fmt = meta.format.upper()
    if fmt == "JPEG":  # JPEG has no lossless mode: lossless=True means quality 100 without chroma subsampling
        kw.update({"quality": 100, "subsampling": 0} if lossless else {"quality": 95})
    elif fmt == "WEBP":
        kw.update({"lossless": True} if lossless else {"quality": 95})
    elif fmt != "PNG":
        raise ValueError(f"{path}: unsupported image format {meta.format}")
    img.save(str(path), format=fmt, **kw)
