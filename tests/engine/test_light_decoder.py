"""A narrower decoder of the model's latent space (``--decoder``): built, saved, loaded in both VAE
formats, checked against the model, and used by the engine for decoding only."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from pusa.errors import ModelInputError, ModelLoadError
from pusa.latent_codec import LatentCodec
from pusa.light_decoder import _first_channels, check_latent_space, decoder_width, load_decoder, narrow_vae
from pusa.loading.components import load_vae
from pusa.pipeline import PusaPipeline
from pusa.testing.layouts import vae_to_original

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def model_vae(tiny_diffusers):
    return load_vae(tiny_diffusers / "vae", torch.float32).eval()


@pytest.fixture(scope="module")
def light_folder(model_vae, tmp_path_factory):
    folder = tmp_path_factory.mktemp("light") / "vae-light"
    torch.manual_seed(5)
    light = narrow_vae(model_vae, 0.5)
    with torch.no_grad():  # a trained light decoder is not its pruned start: any other weights will do
        for p in light.decoder.parameters():
            p.add_(0.05 * torch.randn_like(p))
    light.save_pretrained(str(folder), safe_serialization=True)
    return folder


def _latents(seed: int = 0) -> torch.Tensor:
    return torch.randn((1, 16, 3, 6, 8), generator=torch.Generator().manual_seed(seed))


def test_narrow_vae_keeps_the_latent_space_and_halves_the_decoder(model_vae):
    light = narrow_vae(model_vae, 0.5)
    assert decoder_width(light) == decoder_width(model_vae) // 2 and light.config.base_dim == model_vae.config.base_dim
    for part in ("encoder", "quant_conv", "post_quant_conv"):
        mine, theirs = getattr(model_vae, part).state_dict(), getattr(light, part).state_dict()
        assert all(torch.equal(mine[k], theirs[k]) for k in mine)
    check_latent_space(model_vae, light, "narrowed")
    n_light = sum(p.numel() for p in light.decoder.parameters())
    n_model = sum(p.numel() for p in model_vae.decoder.parameters())
    assert n_light < 0.35 * n_model  # about a quarter: every convolution loses half its inputs and outputs
    px = torch.rand(1, 3, 5, 48, 64) * 2 - 1
    with torch.no_grad():
        assert torch.equal(light.encode(px).latent_dist.mode(), model_vae.encode(px).latent_dist.mode())
        assert light.decode(model_vae.encode(px).latent_dist.mode()).sample.shape == px.shape


def test_the_pruned_start_keeps_each_frame_of_a_temporal_upsampler_apart():
    """``time_conv`` outputs two frames' channels stacked; cutting the first half of the axis would hand
    both output frames the first frame's filters."""
    w = torch.arange(8 * 3, dtype=torch.float32).reshape(8, 3)  # two frames x 4 channels, 3 inputs
    cut = _first_channels("up_blocks.0.upsamplers.0.time_conv.weight", w, torch.Size([4, 2]))
    assert torch.equal(cut, torch.stack([w[0, :2], w[1, :2], w[4, :2], w[5, :2]]))
    other = _first_channels("up_blocks.0.resnets.0.conv1.weight", w, torch.Size([4, 2]))
    assert torch.equal(other, w[:4, :2])


@pytest.mark.parametrize("width", [0, -0.5, 1.5, "half", True])
def test_narrow_vae_refuses_a_width_outside_0_1(model_vae, width):
    with pytest.raises(ModelInputError, match="width"):
        narrow_vae(model_vae, width)


@pytest.mark.parametrize("field, value", [("latents_mean", [0.0] * 16), ("latents_std", [2.0] * 16),
                                          ("scale_factor_spatial", 16), ("scale_factor_temporal", 2)])
def test_a_decoder_of_another_latent_space_is_refused_by_name(model_vae, field, value):
    other = narrow_vae(model_vae, 0.5)
    other.register_to_config(**{field: value})
    with pytest.raises(ModelLoadError, match=field) as e:
        check_latent_space(model_vae, other, "other")
    assert "latent space" in str(e.value)


def test_a_decoder_with_another_z_dim_is_refused_at_load(tiny_diffusers, tmp_path):
    from pusa.training.tiny import make_vae

    make_vae(0, 8, z_dim=8).save_pretrained(str(tmp_path / "z8"), safe_serialization=True)
    loaded: list[str] = []
    with pytest.raises(ModelLoadError, match="z_dim"):
        PusaPipeline.from_pretrained(tiny_diffusers, device="cpu", decoder=tmp_path / "z8",
                                     on_progress=lambda name, status: loaded.append(name))
    assert loaded == ["vae"]  # refused before the text encoder and the DiT (minutes with real weights)
    with pytest.raises(ModelInputError, match="decoder: .*does not exist"):
        PusaPipeline.from_pretrained(tiny_diffusers, device="cpu", decoder=tmp_path / "missing")


def test_an_original_pth_with_a_narrower_decoder_loads_as_the_same_decoder(model_vae, light_folder, tmp_path):
    """LightX2V-style light VAEs and converted folders come as ``Wan2.1_VAE.pth``: the decoder's width
    is read off its first convolution."""
    light = load_vae(light_folder, torch.float32).eval()
    torch.save(vae_to_original(light.state_dict()), str(tmp_path / "light.pth"))
    from_pth = load_decoder(tmp_path / "light.pth", model_vae, torch.float32)
    assert decoder_width(from_pth) == decoder_width(light) == decoder_width(model_vae) // 2
    assert from_pth.encoder is None and from_pth.quant_conv is None  # the model's VAE encodes
    z = _latents()
    a = LatentCodec(model_vae, CPU, decoder=from_pth).decode(z)
    b = LatentCodec(model_vae, CPU, decoder=load_decoder(light_folder, model_vae, torch.float32)).decode(z)
    assert np.array_equal(a, b)


def test_the_engine_decodes_with_the_light_decoder_and_encodes_with_the_model(tiny_diffusers, light_folder, model_vae):
    pipe = PusaPipeline.from_pretrained(tiny_diffusers, device="cpu", decoder=light_folder)
    plain = PusaPipeline.from_pretrained(tiny_diffusers, device="cpu")
    light = load_vae(light_folder, torch.float32).eval()
    z = _latents(1)
    got = pipe.codec.decode(z)
    assert np.array_equal(got, LatentCodec(light, CPU).decode(z))  # the light decoder's own pixels
    assert not np.array_equal(got, plain.codec.decode(z))
    px = torch.rand(1, 3, 5, 48, 64) * 2 - 1
    assert torch.equal(pipe.codec.encode(px), plain.codec.encode(px))  # conditions: the model's latents
    # a whole request decodes its latents with it, the fast kernels included
    from pusa.settings import GenerationSettings

    pipe.codec.fast_decode = True
    result = pipe.generate(GenerationSettings.parse({"prompt": "a ball", "task": "t2v", "steps": 2, "seed": 4,
                                                     "size": "64x48", "frames": 5}))
    plain_result = plain.generate(GenerationSettings.parse({"prompt": "a ball", "task": "t2v", "steps": 2, "seed": 4,
                                                            "size": "64x48", "frames": 5}))
    assert result.frames.shape == plain_result.frames.shape == (5, 48, 64, 3)
    assert np.abs(result.frames.astype(int) - plain_result.frames.astype(int)).mean() > 1.0
    # the sidecar says which decoder made the pixels (its name, never the server's path)
    assert result.metadata()["decoder"] == light_folder.name and plain_result.metadata()["decoder"] is None
    assert str(light_folder.parent) not in json.dumps(result.metadata())


def test_generate_takes_decoder_from_the_command_line(capsys, tiny_diffusers, light_folder, tmp_path):
    from PIL import Image

    from pusa.cli import main

    frames = {}
    for name, extra in (("model", []), ("light", ["--decoder", str(light_folder)])):
        code = main(["generate", "t2v", "--prompt", "a ball", "--model", str(tiny_diffusers), "--steps", "2",
                     "--seed", "3", "--size", "64x48", "--frames", "5", "--output", str(tmp_path / f"{name}/"),
                     "--no-progress", "--device", "cpu", *extra])
        assert code == 0, capsys.readouterr().err
        frames[name] = np.stack([np.asarray(Image.open(f)) for f in sorted((tmp_path / name).glob("frame_*.png"))])
    assert frames["model"].shape == frames["light"].shape and not np.array_equal(frames["model"], frames["light"])
    code = main(["generate", "t2v", "--prompt", "x", "--model", str(tiny_diffusers), "--decoder",
                 str(tmp_path / "nowhere"), "--steps", "1", "--no-progress", "--device", "cpu"])
    assert code == 2 and "decoder:" in capsys.readouterr().err
