"""Anonymizers behind one interface (`create_anonymizer(name, mask)` picks one by name): masks (solid,
blur, mosaic), keyed scrambling, identity replacement and keep. The masked region grows with face size
and motion so a moving head stays covered between detections; `--scope` grows it to the head or person."""

from faceveil.models.anonymizers.base import ANONYMIZERS, SCOPE_SIZE, Anonymizer, MaskSettings, mask_regions
from faceveil.models.anonymizers.masks import Blur, Keep, Mosaic, Scramble, Solid
from faceveil.models.anonymizers.replace import Replace


def create_anonymizer(name: str, mask: MaskSettings = MaskSettings()) -> Anonymizer:
    return ANONYMIZERS.create(name, mask=mask)


__all__ = [
    "ANONYMIZERS",
    "SCOPE_SIZE",
    "Anonymizer",
    "Blur",
    "Keep",
    "MaskSettings",
    "Mosaic",
    "Replace",
    "Scramble",
    "Solid",
    "create_anonymizer",
    "mask_regions",
]
