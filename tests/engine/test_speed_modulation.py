"""Per-frame modulation (issue 11, item 1): the same numbers as diffusers' per-token path, with the
time embedding computed on one row per latent frame instead of one per token."""

from __future__ import annotations

import pytest
import torch

from pusa.errors import InputError
from pusa.pipeline import PusaPipeline
from pusa.settings import GenerationSettings
from pusa.speed.modulation import check_modulation, frame_timesteps, install_per_frame
from pusa.testing.layouts import TI2V_5B_DIT, make_tiny_dit

from .helpers import gradient_image

TOL = 1e-5


def _dit_output(dit: torch.nn.Module, t: torch.Tensor, mode: str, shape=(1, 16, 4, 6, 8)) -> torch.Tensor:
    g = torch.Generator().manual_seed(3)
    x = torch.randn(shape, generator=g)
    ctx = torch.randn(1, 64, dit.config.text_dim, generator=g)
    tokens_per_frame = (shape[3] // 2) * (shape[4] // 2)
    with torch.no_grad():
        return dit(hidden_states=x, timestep=frame_timesteps(t, mode, tokens_per_frame), encoder_hidden_states=ctx,
                   return_dict=False)[0]


@pytest.mark.parametrize("shape_kwargs", [{}, TI2V_5B_DIT], ids=["wan21-14b-shape", "wan22-ti2v-5b-shape"])
def test_per_frame_dit_equals_per_token(shape_kwargs):
    dit = install_per_frame(make_tiny_dit(1, **shape_kwargs))
    channels = dit.config.in_channels
    rows: list[int] = []
    handle = dit.condition_embedder.time_embedder.register_forward_hook(
        lambda m, args, out: rows.append(args[0].reshape(-1, args[0].shape[-1]).shape[0]))
    t = torch.tensor([0.0, 250.0, 875.0, 1000.0])
    per_token = _dit_output(dit, t, "per_token", (1, channels, 4, 6, 8))
    per_frame = _dit_output(dit, t, "per_frame", (1, channels, 4, 6, 8))
    handle.remove()
    assert rows == [4 * 12, 4]  # the time MLP ran on 48 token rows, then on 4 frame rows
    assert per_frame.shape == per_token.shape
    assert float((per_frame - per_token).abs().max()) <= TOL
    assert float(per_token.abs().mean()) > 1e-3  # a real output, not zeros on both sides


def test_frames_that_differ_in_every_block_still_match():
    """Each frame's modulation lands on that frame's tokens only (a shuffled frame order differs)."""
    dit = install_per_frame(make_tiny_dit(2, num_layers=3))
    t = torch.tensor([999.0, 10.0, 500.0, 730.0])
    a = _dit_output(dit, t, "per_frame")
    assert float((a - _dit_output(dit, t, "per_token")).abs().max()) <= TOL
    assert float((a - _dit_output(dit, t.flip(0), "per_token")).abs().max()) > 1e-3


def test_install_refuses_to_go_under_other_hooks():
    from diffusers.hooks import FirstBlockCacheConfig

    dit = make_tiny_dit(0)
    dit.enable_cache(FirstBlockCacheConfig(threshold=0.1))
    with pytest.raises(RuntimeError, match="before other hooks"):
        install_per_frame(dit)


def test_unknown_mode_is_an_input_error():
    with pytest.raises(InputError, match="modulation"):
        check_modulation("per_pixel")


def _generate(pipe: PusaPipeline, **kw) -> torch.Tensor:
    s = GenerationSettings.parse({"prompt": "a red square moves right", "steps": 3, "seed": 11, "size": "64x48",
                                  "task": "i2v", "noise_multipliers": "0.3", **kw})
    return pipe.generate(s, images=[gradient_image(seed=3)], return_latents=True).latents


@pytest.mark.parametrize("fixture", ["tiny_diffusers", "tiny_wan22"])
def test_pipeline_per_frame_matches_per_token(fixture, request):
    """Wan2.1 and Wan2.2 (two experts): an I2V run (frames at different timesteps) in both modes."""
    folder = request.getfixturevalue(fixture)
    per_token = PusaPipeline.from_pretrained(folder, device="cpu", modulation="per_token")
    per_frame = PusaPipeline.from_pretrained(folder, device="cpu")
    assert per_frame.speed.modulation == "per_frame"
    a, b = _generate(per_token), _generate(per_frame)
    assert float((a - b).abs().max()) <= TOL


def test_from_pretrained_refuses_an_unknown_modulation(tiny_diffusers):
    with pytest.raises(InputError, match="modulation: 'fast'"):
        PusaPipeline.from_pretrained(tiny_diffusers, device="cpu", modulation="fast")
