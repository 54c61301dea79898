"""The face-generator interface and its registry. A generator maps latent codes to face images:
`sample(n, seed)` draws seeded latents and their faces, `generate(latents)` is differentiable (torch),
so a latent can be optimised through it. Pure compute: weights come from an installed package or a
path the caller gives (verified by SHA-256), never from a network."""

from __future__ import annotations

from abc import ABC, abstractmethod

from faceveil.hashing import sha256_file
from faceveil.models.registry import Registry


def pick_device(device: str | None = None) -> str:
    """`device` as given, else CUDA when present, else the CPU."""
    if device:
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


class ChecksumMismatch(ValueError):
    """A weight file whose SHA-256 is not the one the caller expects: refused, never loaded."""


def verified_sha256(path: str, expected: str | None) -> str:
    """The file's SHA-256 hex digest; raises ChecksumMismatch (naming the file and both digests)
    when `expected` is given and differs. Hashing comes before any byte is deserialised."""
    actual = sha256_file(path)
    if expected is not None:
        want = expected.lower().removeprefix("sha256:").strip()
        if len(want) != 64 or any(c not in "0123456789abcdef" for c in want):
            raise ValueError(f"expected SHA-256 of {path} is not 64 hex digits: {expected!r}")
        if actual != want:
            raise ChecksumMismatch(
                f"refusing checkpoint {path}: its SHA-256 is {actual}, expected {want} (a different or corrupted file)"
            )
    return actual


class Generator(ABC):
    """Latent codes -> RGB face images.

    `latent_dim`: size of one latent code; `resolution`: side of the square images; `licence`: the
    terms of the weights and the data they were trained on (what a dataset made with them inherits);
    `weights_id`: 'sha256:<hex>' of the weight file. Images are float tensors (N, 3, R, R) in [0, 1]."""

    name: str = ""
    latent_dim: int = 0
    resolution: int = 0
    licence: str = ""

    def __init__(self, device: str | None = None):
        self.device = pick_device(device)

    @property
    @abstractmethod
    def weights_id(self) -> str:
        """'sha256:<hex>' of the weights."""

    @abstractmethod
    def generate(self, latents):
        """(N, 3, R, R) images in [0, 1] of (N, latent_dim) latents; differentiable in `latents`."""

    def sample_latents(self, n: int, seed: int):
        """(n, latent_dim) latents drawn from the generator's prior with a seeded torch generator
        (on the CPU, so a seed gives the same codes on any device)."""
        import torch

        g = torch.Generator().manual_seed(int(seed))
        return torch.randn(n, self.latent_dim, generator=g).to(self.device)

    def project(self, latents):
        """The nearest latents the generator's prior considers typical (identity by default); an
        optimiser calls it after each step to stay where the generator makes faces."""
        return latents

    def sample(self, n: int, seed: int):
        """(latents (n, latent_dim), images (n, 3, R, R) in [0, 1]), the same for the same seed."""
        import torch

        z = self.sample_latents(n, seed)
        with torch.no_grad():
            return z, self.generate(z)


GENERATORS: Registry[Generator] = Registry("generator")
