"""Face generators behind one interface; `create_generator(name, **kw)` picks one by name."""

from faceveil.models.generators.base import GENERATORS, ChecksumMismatch, Generator
from faceveil.models.generators import dcgan, stylegan2  # noqa: F401  (registers)

DEFAULT_GENERATOR = "dcgan-digiface"


def create_generator(name: str = DEFAULT_GENERATOR, **kwargs) -> Generator:
    return GENERATORS.create(name, **kwargs)


__all__ = ["GENERATORS", "DEFAULT_GENERATOR", "ChecksumMismatch", "Generator", "create_generator"]
