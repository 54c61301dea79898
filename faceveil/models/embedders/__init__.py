"""Identity embedders behind one interface; `create_embedder(name, **kw)` picks one by name."""

from faceveil.models.embedders.base import EMBEDDERS, Embedder, frontality, quality
from faceveil.models.embedders import dlib_resnet  # noqa: F401  (registers)

DEFAULT_EMBEDDER = "dlib-resnet"


def create_embedder(name: str = DEFAULT_EMBEDDER, **kwargs) -> Embedder:
    return EMBEDDERS.create(name, **kwargs)


__all__ = ["EMBEDDERS", "DEFAULT_EMBEDDER", "Embedder", "create_embedder", "frontality", "quality"]
