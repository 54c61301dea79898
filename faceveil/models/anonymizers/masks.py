"""The masking methods (solid, blur, mosaic: box or ellipse masks, any scope), keyed scrambling, and
keep (faces left as they are: a run that only edits physiological signals, `--pulse`). Strength
scales with face size."""

from __future__ import annotations

import functools
import hashlib

import cv2
import numpy as np

from faceveil.models.anonymizers.base import ANONYMIZERS, Anonymizer, MaskSettings

SCOPED_FILL = np.array([128, 128, 128], np.uint8)  # solid's fill under a head or person scope
SCOPED_BLOCK_SHARE = 1 / 48  # mosaic's blocks under a head or person scope: their side over the frame's longer side
SCOPED_LEVELS = 14  # and their lightness: within this many grey levels of SCOPED_FILL's


@ANONYMIZERS.register("solid")
class Solid(Anonymizer):
    """A flat fill: the region's own mean colour by default (a black oval reads as a head to
    detectors and eyes alike), or a fixed colour."""

    name = "solid"
    scoped = True

    def __init__(self, mask: MaskSettings = MaskSettings(), colour: tuple[int, int, int] | None = None):
        super().__init__(mask)
        self.colour = None if colour is None else np.array(colour, np.uint8)

    def _replace(self, roi, face_size, key):
        colour = roi.reshape(-1, 3).mean(0).round().astype(np.uint8) if self.colour is None else self.colour
        return np.broadcast_to(colour, roi.shape)

    def _scoped(self, roi, mask, size, where):
        """Filled with one neutral grey (SCOPED_FILL) or the given colour: the fill carries none of the
        person's skin, hair or clothes, nor their surroundings' colour."""
        return np.broadcast_to(self.colour if self.colour is not None else SCOPED_FILL, roi.shape)


@ANONYMIZERS.register("blur")
class Blur(Anonymizer):
    """Gaussian blur with sigma proportional to face size (blur alone is attackable: see the report)."""

    name = "blur"
    scoped = True

    def __init__(self, mask: MaskSettings = MaskSettings(), strength: float = 0.25):
        super().__init__(mask)
        self.strength = strength

    def _replace(self, roi, face_size, key):
        sigma = max(2.0, self.strength * face_size)
        f = int(sigma // 8)  # a wide blur is the same at lower resolution, and far cheaper there
        if f < 2:
            return cv2.GaussianBlur(roi, (0, 0), sigmaX=sigma, sigmaY=sigma, borderType=cv2.BORDER_REPLICATE)
        h, w = roi.shape[:2]
        small = cv2.resize(roi, (max(1, w // f), max(1, h // f)), interpolation=cv2.INTER_AREA)
        small = cv2.GaussianBlur(small, (0, 0), sigmaX=sigma / f, sigmaY=sigma / f, borderType=cv2.BORDER_REPLICATE)
        return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


@ANONYMIZERS.register("mosaic")
class Mosaic(Anonymizer):
    """Pixelation with at most `blocks` blocks across the face, blocks of at least `min_block`
    pixels, and block contrast scaled by `contrast` around the region's mean: finer or full-contrast
    mosaics keep enough of a head's layout (dark hair over lighter skin) for a detector to find a
    face in them again."""

    name = "mosaic"
    scoped = True

    def __init__(
        self, mask: MaskSettings = MaskSettings(), blocks: int = 3, min_block: int = 10, contrast: float = 0.45
    ):
        super().__init__(mask)
        self.blocks, self.min_block, self.contrast = blocks, min_block, contrast

    def _replace(self, roi, face_size, key):
        block = max(self.min_block, int(round(face_size / self.blocks)))
        h, w = roi.shape[:2]
        small = cv2.resize(roi, (max(1, w // block), max(1, h // block)), interpolation=cv2.INTER_AREA).astype(
            np.float32
        )
        mean = small.reshape(-1, 3).mean(0)
        small = np.clip(mean + self.contrast * (small - mean) + 0.5, 0, 255).astype(np.uint8)
        return cv2.resize(small, (w, h), interpolation=cv2.INTER_NEAREST)

    def _scoped(self, roi, mask, size, where):
        """Under a head or person scope: grey blocks around solid's neutral grey whose lightness is a
        pattern drawn from the media's name (scoped_pattern), nothing of the person's; it is laid on the
        frame, so it stays put along a video. Measured with the parrot attack on ../shared's labelled
        photos (chance 4.8 %): the head's block colours re-identified 11.9 %, their lightness alone
        8.9 %, one fixed pattern on the head's own grid 11.9 % and on the frame's 17.8 % (photos of
        one session share their size and framing, so they share the pattern's phase and scale)."""
        h, w = roi.shape[:2]
        block = max(self.min_block, int(round(SCOPED_BLOCK_SHARE * max(where.frame_width, where.frame_height))))
        pattern = scoped_pattern(where.media)
        ys = (np.arange(where.y, where.y + h) // block) % pattern.shape[0]
        xs = (np.arange(where.x, where.x + w) // block) % pattern.shape[1]
        return np.repeat(pattern[ys[:, None], xs[None, :]][..., None], 3, axis=2)


@functools.lru_cache(maxsize=64)
def scoped_pattern(media: str) -> np.ndarray:
    """The scoped mosaic's block lightness for one media: 16x16 greys within SCOPED_LEVELS of
    SCOPED_FILL's, seeded by the media's name (the same on a rerun; unrelated between media)."""
    seed = int.from_bytes(hashlib.sha256(media.encode("utf-8", "surrogatepass")).digest()[:8], "big")
    levels = np.random.default_rng(seed).integers(-SCOPED_LEVELS, SCOPED_LEVELS + 1, (16, 16))
    return (int(SCOPED_FILL[0]) + levels).astype(np.uint8)


@ANONYMIZERS.register("scramble")
class Scramble(Anonymizer):
    """Keyed block scrambling (see models/scramble.py): reveals no face without the key, inverts
    exactly with it on lossless output. Box masks only (an ellipse would cut blocks apart)."""

    name = "scramble"
    needs_key = True

    def __init__(self, mask: MaskSettings = MaskSettings(), block: int = 8):
        if mask.shape != "box":
            raise ValueError("the scramble method needs box masks")
        super().__init__(mask)
        self.block = block

    def _replace(self, roi, face_size, key):
        from faceveil.models.scramble import scramble

        return scramble(roi, key, self.block)


@ANONYMIZERS.register("keep")
class Keep(Anonymizer):
    """Leaves every face visible (`--method keep`): the run only edits physiological signals."""

    name = "keep"

    def _replace(self, roi, face_size, key):
        return roi

    def apply(self, rgb, dets, region_key=None, *, media: str = "", preview: bool = False):
        return rgb
