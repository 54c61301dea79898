"""StyleGAN2 generators from a user-supplied checkpoint, by path, verified by SHA-256.

Official StyleGAN2(-ADA) `.pkl` files are Python pickles that carry the network's source code and run
it when unpickled: they are refused here. A checkpoint is a converted `.pt` file, a plain dict

    {"format": "faceveil-stylegan2/1", "config": {...}, "state_dict": G_ema.state_dict()}

read with `torch.load(weights_only=True)` (tensors and plain values only, no code) into the StyleGAN2
generator architecture defined below, whose parameter and buffer names are the official PyTorch
implementation's (stylegan2-ada-pytorch `training/networks.py`: `mapping.fc0.weight`, `synthesis.b4.const`,
`synthesis.b8.conv0.affine.weight`, ...). Convert an official pickle once, in an environment you trust
that has NVIDIA's code, with `export_checkpoint(G_ema, "g.pt")` from this module.

Latents are W codes (w_dim; or W+ codes (num_ws, w_dim)): `sample` maps seeded Z codes through the
mapping network with truncation; optimisation works in W, as FALCO does.
`build_network` is longer than 60 lines: it defines the mapping and synthesis modules together, in
the reference implementation's order and parameter names, so a converted checkpoint's keys line up.
Over 300 lines: the architecture (`build_network`) and the checkpoint format loaded into it (save,
export, load) must agree on every parameter name, so they stay in one file.
"""

from __future__ import annotations

import math
from pathlib import Path

from faceveil.models.generators.base import GENERATORS, Generator, verified_sha256

FORMAT = "faceveil-stylegan2/1"
DEFAULT_LICENCE = (
    "stylegan2: a user-supplied checkpoint; its terms are those of the checkpoint and of its training "
    "data (NVIDIA's official StyleGAN2 weights are under the NVIDIA Source Code License-NC, non-commercial "
    "use; FFHQ images are CC BY-NC-SA 4.0)."
)
CONFIG_KEYS = (
    "z_dim",
    "w_dim",
    "img_resolution",
    "img_channels",
    "mapping_layers",
    "mapping_lr_multiplier",
    "channel_base",
    "channel_max",
    "conv_clamp",
    "architecture",
)


def default_config(**overrides) -> dict:
    """The official FFHQ StyleGAN2 configuration (1024 px), with `overrides` (e.g. a small test net)."""
    cfg = {
        "z_dim": 512,
        "w_dim": 512,
        "img_resolution": 1024,
        "img_channels": 3,
        "mapping_layers": 8,
        "mapping_lr_multiplier": 0.01,
        "channel_base": 32768,
        "channel_max": 512,
        "conv_clamp": 256,
        "architecture": "skip",
    }
    unknown = set(overrides) - set(cfg)
    if unknown:
        raise ValueError(f"unknown StyleGAN2 config keys: {sorted(unknown)}")
    return {**cfg, **overrides}


def build_network(config: dict):
    """A StyleGAN2 generator (mapping + synthesis, 'skip' architecture) of this configuration."""
    import numpy as np
    import torch
    import torch.nn.functional as F
    from torch import nn

    cfg = default_config(**{k: v for k, v in config.items() if k in CONFIG_KEYS})
    if cfg["architecture"] != "skip":
        raise ValueError(f"only the 'skip' StyleGAN2 generator architecture is supported, got {cfg['architecture']!r}")
    res_log2 = int(math.log2(cfg["img_resolution"]))
    if cfg["img_resolution"] < 4 or 2**res_log2 != cfg["img_resolution"]:
        raise ValueError(f"StyleGAN2 resolution must be a power of two >= 4, got {cfg['img_resolution']}")
    clamp = cfg["conv_clamp"]
    sqrt2 = float(np.sqrt(2))

    def fir(f=(1, 3, 3, 1)):
        f = torch.tensor(f, dtype=torch.float32)
        f = torch.outer(f, f)
        return f / f.sum()

    def upfirdn(x, f, up=1, pad=(0, 0, 0, 0), gain=1.0):
        """Upsample by zero insertion, pad (x0, x1, y0, y1), then filter with f (true convolution)."""
        n, c, h, w = x.shape
        if up > 1:
            x = F.pad(x.reshape(n, c, h, 1, w, 1), [0, up - 1, 0, 0, 0, up - 1]).reshape(n, c, h * up, w * up)
        x = F.pad(x, list(pad))
        k = (f * gain).flip([0, 1]).to(x.dtype)[None, None].repeat(c, 1, 1, 1)
        return F.conv2d(x, k, groups=c)

    def bias_act(x, b, lrelu: bool, gain: float = 1.0):
        x = x + b.reshape(1, -1, *([1] * (x.ndim - 2)))
        if lrelu:
            x = F.leaky_relu(x, 0.2) * (sqrt2 * gain)
        elif gain != 1:
            x = x * gain
        return x.clamp(-clamp * gain, clamp * gain) if clamp is not None else x

    class FC(nn.Module):
        def __init__(self, cin, cout, lrelu=False, lr=1.0, bias_init=0.0):
            super().__init__()
            self.weight = nn.Parameter(torch.randn(cout, cin) / lr)
            self.bias = nn.Parameter(torch.full([cout], float(bias_init)))
            self.wg, self.bg, self.lrelu = lr / np.sqrt(cin), lr, lrelu

        def forward(self, x):
            x = x.matmul((self.weight * self.wg).t()) + self.bias * self.bg
            return F.leaky_relu(x, 0.2) * sqrt2 if self.lrelu else x

    def modconv(x, weight, styles, demodulate=True, up=1, f=None):
        """Modulated convolution (per-sample weights as a grouped convolution); `up` = 2 is a stride-2
        transposed convolution followed by the FIR low-pass."""
        n, ci = x.shape[:2]
        co, _, kh, kw = weight.shape
        w = weight[None] * styles.reshape(n, 1, ci, 1, 1)
        if demodulate:
            w = w * (w.square().sum([2, 3, 4]) + 1e-8).rsqrt().reshape(n, co, 1, 1, 1)
        x = x.reshape(1, n * ci, *x.shape[2:])
        if up == 1:
            x = F.conv2d(x, w.reshape(n * co, ci, kh, kw), padding=kh // 2, groups=n)
        else:
            x = F.conv_transpose2d(x, w.transpose(1, 2).reshape(n * ci, co, kh, kw), stride=2, groups=n)
            x = upfirdn(x, f, pad=(1, 1, 1, 1), gain=4.0)
        return x.reshape(n, co, *x.shape[2:])

    class Layer(nn.Module):
        def __init__(self, cin, cout, res, up=1):
            super().__init__()
            self.up, self.res = up, res
            self.register_buffer("resample_filter", fir())
            self.affine = FC(cfg["w_dim"], cin, bias_init=1)
            self.weight = nn.Parameter(torch.randn(cout, cin, 3, 3))
            self.register_buffer("noise_const", torch.randn(res, res))
            self.noise_strength = nn.Parameter(torch.zeros([]))
            self.bias = nn.Parameter(torch.zeros(cout))

        def forward(self, x, w, gain=1.0):
            x = modconv(x, self.weight, self.affine(w), up=self.up, f=self.resample_filter)
            x = x + self.noise_const * self.noise_strength  # the checkpoint's fixed noise: deterministic output
            return bias_act(x, self.bias, True, gain)

    class ToRGB(nn.Module):
        def __init__(self, cin):
            super().__init__()
            self.affine = FC(cfg["w_dim"], cin, bias_init=1)
            self.weight = nn.Parameter(torch.randn(cfg["img_channels"], cin, 1, 1))
            self.bias = nn.Parameter(torch.zeros(cfg["img_channels"]))
            self.wg = 1 / np.sqrt(cin)

        def forward(self, x, w):
            return bias_act(modconv(x, self.weight, self.affine(w) * self.wg, demodulate=False), self.bias, False)

    class Block(nn.Module):
        def __init__(self, cin, cout, res):
            super().__init__()
            self.cin = cin
            self.register_buffer("resample_filter", fir())
            if cin == 0:
                self.const = nn.Parameter(torch.randn(cout, res, res))
            else:
                self.conv0 = Layer(cin, cout, res, up=2)
            self.conv1 = Layer(cout, cout, res)
            self.torgb = ToRGB(cout)
            self.n_ws = (1 if cin == 0 else 2) + 1

        def forward(self, x, img, ws):
            if self.cin == 0:
                x = self.conv1(self.const[None].expand(ws.shape[0], -1, -1, -1), ws[:, 0])
            else:
                x = self.conv1(self.conv0(x, ws[:, 0]), ws[:, 1])
            if img is not None:
                img = upfirdn(img, self.resample_filter, up=2, pad=(2, 1, 2, 1), gain=4.0)
            y = self.torgb(x, ws[:, self.n_ws - 1])
            return x, (img + y if img is not None else y)

    class Synthesis(nn.Module):
        def __init__(self):
            super().__init__()
            self.resolutions = [2**i for i in range(2, res_log2 + 1)]
            ch = {r: min(cfg["channel_base"] // r, cfg["channel_max"]) for r in self.resolutions}
            self.num_ws = 0
            for r in self.resolutions:
                block = Block(ch[r // 2] if r > 4 else 0, ch[r], r)
                setattr(self, f"b{r}", block)
                self.num_ws += block.n_ws - 1  # consecutive blocks share one w (a block's torgb, the next conv0)
            self.num_ws += 1

        def forward(self, ws):
            x = img = None
            i = 0
            for r in self.resolutions:
                block = getattr(self, f"b{r}")
                x, img = block(x, img, ws[:, i : i + block.n_ws])
                i += block.n_ws - 1
            return img

    class Mapping(nn.Module):
        def __init__(self, num_ws):
            super().__init__()
            self.num_ws, self.n = num_ws, cfg["mapping_layers"]
            dims = [cfg["z_dim"]] + [cfg["w_dim"]] * self.n
            for i in range(self.n):
                setattr(self, f"fc{i}", FC(dims[i], dims[i + 1], lrelu=True, lr=cfg["mapping_lr_multiplier"]))
            self.register_buffer("w_avg", torch.zeros(cfg["w_dim"]))

        def forward(self, z, psi=1.0):
            x = z * (z.square().mean(1, keepdim=True) + 1e-8).rsqrt()
            for i in range(self.n):
                x = getattr(self, f"fc{i}")(x)
            return self.w_avg.lerp(x, psi) if psi != 1 else x

    class StyleGAN2Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.config = cfg
            self.synthesis = Synthesis()
            self.num_ws = self.synthesis.num_ws
            self.mapping = Mapping(self.num_ws)

        def forward(self, z, psi=1.0):
            w = self.mapping(z, psi)
            return self.synthesis(w[:, None].expand(-1, self.num_ws, -1))

    return StyleGAN2Net()


def save_checkpoint(net, path: str) -> None:
    """A network of `build_network` as a converted checkpoint (what the loader reads)."""
    import torch

    torch.save({"format": FORMAT, "config": dict(net.config), "state_dict": net.state_dict()}, path)


def export_checkpoint(G, path: str) -> None:
    """Converts NVIDIA's official generator (stylegan2-ada-pytorch or stylegan3 code, `G_ema` of a .pkl
    unpickled in an environment you trust) to the `.pt` checkpoint this loader reads."""
    import torch

    kw = dict(getattr(G, "init_kwargs", {}))
    mk, sk = dict(kw.get("mapping_kwargs", {})), dict(kw.get("synthesis_kwargs", {}))
    if kw.get("c_dim", 0):
        raise ValueError("conditional generators (c_dim > 0) are not supported")
    config = default_config(
        z_dim=G.z_dim,
        w_dim=G.w_dim,
        img_resolution=G.img_resolution,
        img_channels=G.img_channels,
        mapping_layers=mk.get("num_layers", 8),
        mapping_lr_multiplier=mk.get("lr_multiplier", 0.01),
        channel_base=sk.get("channel_base", 32768),
        channel_max=sk.get("channel_max", 512),
        conv_clamp=sk.get("conv_clamp"),
        architecture=sk.get("architecture", "skip"),
    )
    state = {k: v.detach().float().cpu() for k, v in G.state_dict().items()}
    torch.save({"format": FORMAT, "config": config, "state_dict": state}, path)


def load_network(path: str, device: str = "cpu"):
    """The network of a converted checkpoint (no code runs: weights_only). Raises with the file's name
    when it is a pickle, not a converted checkpoint, or its weights do not fit the architecture."""
    import torch

    if Path(path).suffix.lower() == ".pkl":
        raise ValueError(
            f"{path}: official StyleGAN2 .pkl files are pickles that run code when loaded and are refused; "
            "convert it once with faceveil.models.generators.stylegan2.export_checkpoint(G_ema, 'g.pt') "
            "in an environment you trust, and pass the .pt"
        )
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - an unreadable or code-carrying file
        raise ValueError(
            f"{path}: not a converted StyleGAN2 checkpoint that loads without running code ({e})"
        ) from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise ValueError(f"{path}: not a converted StyleGAN2 checkpoint (expected a dict with format {FORMAT!r})")
    net = build_network(ckpt["config"])
    missing, unexpected = net.load_state_dict(ckpt["state_dict"], strict=False)
    if missing:
        raise ValueError(f"{path}: checkpoint lacks {len(missing)} weight(s) of this architecture, e.g. {missing[:3]}")
    ignored = [k for k in unexpected if not k.startswith("mapping.embed")]  # labels: unconditional nets have none
    if ignored:
        raise ValueError(f"{path}: checkpoint has {len(ignored)} weight(s) this architecture lacks, e.g. {ignored[:3]}")
    return net.eval().requires_grad_(False).to(device)


@GENERATORS.register("stylegan2")
class StyleGAN2(Generator):
    """`checkpoint`: a converted `.pt` (see the module); `sha256`: its expected digest (required: a
    checkpoint with another digest is refused before it is read); CUDA when present. Latents are W
    codes; `truncation_psi` pulls sampled codes towards the average face (more typical faces)."""

    licence = DEFAULT_LICENCE  # (an instance may say its checkpoint's own terms)

    name = "stylegan2"

    def __init__(
        self,
        checkpoint: str | None = None,
        sha256: str | None = None,
        device: str | None = None,
        truncation_psi: float = 0.7,
        licence: str = DEFAULT_LICENCE,
    ):
        super().__init__(device)
        if not checkpoint:
            raise ValueError("the stylegan2 generator needs a checkpoint path (--checkpoint PATH) and its SHA-256")
        if not sha256:
            raise ValueError(
                f"the stylegan2 checkpoint {checkpoint} needs its expected SHA-256 (it is verified before loading)"
            )
        self.checkpoint, self.truncation_psi, self.licence = str(checkpoint), truncation_psi, licence
        self._sha = verified_sha256(self.checkpoint, sha256)
        self.net = load_network(self.checkpoint, self.device)
        self.latent_dim = int(self.net.config["w_dim"])
        self.resolution = int(self.net.config["img_resolution"])

    @property
    def weights_id(self) -> str:
        return "sha256:" + self._sha

    def sample_latents(self, n: int, seed: int):
        import torch

        g = torch.Generator().manual_seed(int(seed))
        z = torch.randn(n, int(self.net.config["z_dim"]), generator=g).to(self.device)
        with torch.no_grad():
            return self.net.mapping(z, self.truncation_psi)

    def generate(self, latents):
        ws = latents.to(self.device)
        if ws.ndim == 2:
            ws = ws[:, None].expand(-1, self.net.num_ws, -1)
        return ((self.net.synthesis(ws) + 1) / 2).clamp(0, 1)
