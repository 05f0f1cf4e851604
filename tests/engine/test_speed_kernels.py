"""Attention backends and regional compilation (issue 11, item 5), on the CPU where the kernel exists."""

from __future__ import annotations

import importlib.util

import pytest

from pusa.errors import InputError
from pusa.pipeline import PusaPipeline
from pusa.settings import GenerationSettings
from pusa.speed.kernels import check_attention

from .helpers import gradient_image


def _run(pipe: PusaPipeline, cfg: float = 5.0):
    s = GenerationSettings.parse({"prompt": "a red square moves right", "steps": 2, "seed": 11, "size": "64x48",
                                  "task": "i2v", "noise_multipliers": "0.3", "cfg": cfg})
    return pipe.generate(s, images=[gradient_image(seed=3)], return_latents=True)


def test_sdpa_goes_through_diffusers_dispatcher_and_matches_auto(tiny_diffusers):
    from diffusers.models.attention_dispatch import AttentionBackendName

    auto = PusaPipeline.from_pretrained(tiny_diffusers, device="cpu")
    sdpa = PusaPipeline.from_pretrained(tiny_diffusers, device="cpu", attention="sdpa")
    backends = {b.attn1.processor._attention_backend for b in sdpa.transformers[0].blocks}
    assert backends == {AttentionBackendName.NATIVE}
    assert {b.attn1.processor._attention_backend for b in auto.transformers[0].blocks} == {None}
    assert (_run(auto).latents == _run(sdpa).latents).all()


@pytest.mark.parametrize("mode, module", [("flash", "flash_attn"), ("flash3", "flash_attn_interface"),
                                          ("sage", "sageattention")])
def test_a_kernel_that_is_not_installed_is_an_input_error(mode, module, tiny_diffusers):
    if importlib.util.find_spec(module) is not None:
        pytest.skip(f"{module} is installed here")
    with pytest.raises(InputError, match=f"attention: '{mode}' needs"):
        PusaPipeline.from_pretrained(tiny_diffusers, device="cpu", attention=mode)


def test_unknown_attention_is_an_input_error():
    with pytest.raises(InputError, match="attention: 'xformers' is not allowed"):
        check_attention("xformers")


def test_compile_repeated_blocks_runs_and_matches_eager(tiny_diffusers):
    eager = _run(PusaPipeline.from_pretrained(tiny_diffusers, device="cpu"), cfg=1.0)
    pipe = PusaPipeline.from_pretrained(tiny_diffusers, device="cpu", compile=True)
    compiled = _run(pipe, cfg=1.0)
    assert all(b._compiled_call_impl is not None for b in pipe.transformers[0].blocks)
    assert pipe.transformers[0]._compiled_call_impl is None  # regional: the blocks only
    assert float((compiled.latents - eager.latents).abs().max()) <= 1e-4
    assert compiled.stats == {"forwards": 2, "skipped": 0}  # the block-run counter survives compilation
