import hashlib
import os

import pytest
import torch

from faceveil.models.generators import GENERATORS, ChecksumMismatch, create_generator
from faceveil.models.generators.stylegan2 import build_network, default_config, save_checkpoint


def _sha(path) -> str:
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def test_registry_names_the_generators_and_the_choices_on_a_typo():
    assert {"dcgan-digiface", "stylegan2"} <= set(GENERATORS.names())
    with pytest.raises(ValueError, match="choose one of"):
        create_generator("biggan")


@pytest.fixture(scope="module")
def dcgan():
    return create_generator("dcgan-digiface", device="cpu")


def test_dcgan_samples_64px_faces_the_same_for_the_same_seed(dcgan):
    z, img = dcgan.sample(3, seed=7)
    assert dcgan.latent_dim == 100 and dcgan.resolution == 64
    assert z.shape == (3, 100) and img.shape == (3, 3, 64, 64)
    assert float(img.min()) >= 0 and float(img.max()) <= 1 and float(img.std()) > 0.05
    z2, img2 = dcgan.sample(3, seed=7)
    assert torch.equal(z, z2) and torch.equal(img, img2)
    z3, img3 = dcgan.sample(3, seed=8)
    assert not torch.equal(z, z3) and (img - img3).abs().mean() > 0.02
    assert not torch.equal(img[0], img[1])  # each latent its own face


def test_dcgan_is_differentiable_and_names_its_weights_and_licence(dcgan):
    z = dcgan.sample_latents(1, 0).requires_grad_(True)
    dcgan.generate(z).mean().backward()
    assert z.grad is not None and z.grad.abs().sum() > 0
    assert dcgan.weights_id.startswith("sha256:") and len(dcgan.weights_id) == 71
    assert "non-commercial research" in dcgan.licence and "DigiFace-1M" in dcgan.licence


def test_dcgan_weights_with_the_wrong_hash_are_refused(dcgan):
    with pytest.raises(ChecksumMismatch, match="weights.tar"):
        create_generator("dcgan-digiface", sha256="0" * 64)
    right = dcgan.weights_id.removeprefix("sha256:")
    assert create_generator("dcgan-digiface", sha256=right, device="cpu").weights_id == dcgan.weights_id


def _tiny_stylegan2(seed=0):
    """A 32x32 StyleGAN2 of the real architecture with tiny channel counts, every weight random
    (noise strengths and biases too, so a weight loaded into the wrong place shows)."""
    torch.manual_seed(seed)
    net = build_network(
        default_config(
            z_dim=16, w_dim=16, img_resolution=32, mapping_layers=2, channel_base=128, channel_max=16, conv_clamp=256
        )
    )
    with torch.no_grad():
        for name, p in net.named_parameters():
            if name.endswith(("noise_strength", "bias")):
                p.copy_(torch.randn_like(p) * 0.1)
        net.mapping.w_avg.copy_(torch.randn(16) * 0.1)
    return net.eval()


@pytest.fixture
def checkpoint(tmp_path):
    net = _tiny_stylegan2()
    path = tmp_path / "tiny-stylegan2.pt"
    save_checkpoint(net, str(path))
    return net, str(path), _sha(path)


def test_stylegan2_checkpoint_round_trip_gives_identical_outputs(checkpoint):
    net, path, sha = checkpoint
    names = set(net.state_dict())
    # the official implementation's names, so converted official checkpoints load
    assert {
        "mapping.fc0.weight",
        "mapping.fc1.bias",
        "mapping.w_avg",
        "synthesis.b4.const",
        "synthesis.b4.conv1.affine.weight",
        "synthesis.b8.conv0.weight",
        "synthesis.b8.conv0.noise_const",
        "synthesis.b8.conv0.noise_strength",
        "synthesis.b8.resample_filter",
        "synthesis.b32.torgb.affine.bias",
        "synthesis.b32.torgb.weight",
    } <= names
    assert net.num_ws == 8  # 1 + 2 per block after the first + the last torgb: 1 + 2*3 + 1
    g = create_generator("stylegan2", checkpoint=path, sha256=sha, device="cpu", truncation_psi=0.7)
    assert (g.latent_dim, g.resolution, g.weights_id) == (16, 32, "sha256:" + sha)
    w, img = g.sample(2, seed=3)
    assert w.shape == (2, 16) and img.shape == (2, 3, 32, 32)
    with torch.no_grad():
        z = torch.randn(2, 16, generator=torch.Generator().manual_seed(3))
        w_ref = net.mapping(z, 0.7)
        ref = ((net.synthesis(w_ref[:, None].expand(-1, net.num_ws, -1)) + 1) / 2).clamp(0, 1)
    assert torch.equal(w, w_ref) and torch.equal(img, ref)
    assert float(img.std()) > 0.01
    w_plus = w[:, None].expand(-1, net.num_ws, -1).clone().requires_grad_(True)  # W+ codes, differentiable
    g.generate(w_plus).sum().backward()
    assert w_plus.grad.abs().sum() > 0
    other = _tiny_stylegan2(seed=1)
    with torch.no_grad():
        assert not torch.equal(ref, ((other.synthesis(w_ref[:, None].expand(-1, 8, -1)) + 1) / 2).clamp(0, 1))


def test_stylegan2_checkpoint_with_the_wrong_hash_is_refused_naming_the_file(checkpoint):
    _, path, sha = checkpoint
    wrong = ("f" if sha[0] != "f" else "e") + sha[1:]
    with pytest.raises(ChecksumMismatch, match="tiny-stylegan2.pt") as e:
        create_generator("stylegan2", checkpoint=path, sha256=wrong)
    assert sha in str(e.value) and wrong in str(e.value)
    with pytest.raises(ValueError, match="SHA-256"):
        create_generator("stylegan2", checkpoint=path)  # no expected hash: refused too
    with pytest.raises(ValueError, match="checkpoint path"):
        create_generator("stylegan2")


class _Payload:
    def __reduce__(self):
        return (os.mkdir, (os.environ["FACEVEIL_TEST_MARKER"],))


def test_stylegan2_pickles_are_refused_and_never_run(tmp_path, monkeypatch):
    marker = tmp_path / "ran"
    monkeypatch.setenv("FACEVEIL_TEST_MARKER", str(marker))
    evil = tmp_path / "evil.pt"
    torch.save({"format": "faceveil-stylegan2/1", "config": {}, "state_dict": {}, "x": _Payload()}, str(evil))
    with pytest.raises(ValueError, match="evil.pt"):
        create_generator("stylegan2", checkpoint=str(evil), sha256=_sha(evil))
    assert not marker.exists()
    pkl = tmp_path / "network-snapshot.pkl"
    pkl.write_bytes(b"\x80\x04N.")
    with pytest.raises(ValueError, match="export_checkpoint"):
        create_generator("stylegan2", checkpoint=str(pkl), sha256=_sha(pkl))
