"""Per photo of a dataset published by identity replacement: its faces' identity vectors
(`identify_faces`), so the flow can group them into people; per person, one surrogate made from
their best face (`person_surrogate`), which every other photo of them starts from."""

from __future__ import annotations

import numpy as np

from faceveil.config import AnonymizeConfig
from faceveil.pipeline.jobs import MediaItem
from faceveil.pipeline.places import check_size, locations, scratch
from faceveil.pipeline.toolkit import toolkit
from faceveil.storage.media import MediaError, read_image


def _photo(config: AnonymizeConfig, rel: str) -> np.ndarray:
    src = locations(config)[0]
    with src.local_file(rel, scratch(config)) as local:
        return read_image(local, max_pixels=config.encoding.max_pixels)[0]


def identify_faces(config: AnonymizeConfig, item: MediaItem) -> list[dict]:
    """The faces the image task will find in this photo (the same detections), each with its identity
    vector (the replacer's embedder) and quality; [] for a photo that cannot be read (the image task
    records why)."""
    from faceveil.models.embedders.base import quality

    try:
        check_size(config, item)
        rgb = _photo(config, item.rel)
    except MediaError:
        return []
    kit = toolkit(config.settings)
    dets = kit.photo_faces(rgb)
    if not len(dets):
        return []
    vectors = kit.anonymizer.replacer.embedder.embed(rgb, dets)
    q = quality(rgb, dets)
    return [
        {
            "rel": item.rel,
            "box": dets.boxes[j].astype(np.float32),
            "landmarks": dets.landmarks[j].astype(np.float32),
            "score": float(dets.scores[j]),
            "vector": vectors[j].astype(np.float32),
            "quality": float(q[j]),
        }
        for j in range(len(dets))
    ]


def person_surrogate(config: AnonymizeConfig, face: dict, others: np.ndarray, seed: int):
    """The surrogate of the person whose best face is `face` (from identify_faces), kept away from
    the identities in `others` (every person of the dataset); None when the photo is gone."""
    try:
        rgb = _photo(config, face["rel"])
    except MediaError:
        return None
    return toolkit(config.settings).anonymizer.person_surrogate(
        rgb, face["box"], face["landmarks"], face["vector"], others, seed
    )
