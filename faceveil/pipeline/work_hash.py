"""What makes an output what it is, as one hash: the output settings, the faceveil version and the
weights of the models that shape it (the detector; the embedder when identities are indexed). A
finished media whose row carries another hash is done again."""

from __future__ import annotations

import hashlib
import json

from faceveil.config import AnonymizeConfig
from faceveil.pipeline.toolkit import loaded_embedder, toolkit
from faceveil.version import __version__


def work_hash(config: AnonymizeConfig) -> str:
    """16 hex digits over settings, version and weights (stored as the media row's work_hash)."""
    weights = {"detector": toolkit(config.settings).detector.weights_id}
    if config.sealing.index:
        weights["embedder"] = loaded_embedder(config.sealing.embedder).weights_id
    blob = json.dumps(
        {"settings": config.output_settings(), "version": __version__, "weights": weights}, sort_keys=True
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:16]
