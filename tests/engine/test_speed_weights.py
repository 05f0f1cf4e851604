"""fp8 weight storage (issue 11, item 3): float8_e4m3fn storage, full-precision compute, exact LoRA re-merge."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from pusa.errors import InputError
from pusa.pipeline import PusaPipeline
from pusa.settings import GenerationSettings
from pusa.speed.options import SpeedOptions
from pusa.speed.weights import FP8, parameter_bytes
from pusa.testing.layouts import make_tiny_dit, write_lora

log = logging.getLogger(__name__)
LORA_TARGET = "blocks.0.attn1.to_q"


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(((a.astype(np.float64) - b.astype(np.float64)) ** 2).mean())
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


@pytest.fixture(scope="module")
def lora_file(tmp_path_factory):
    return write_lora(tmp_path_factory.mktemp("lora") / "pusa.safetensors", make_tiny_dit(0), rank=4, seed=7)


def test_fp8_stores_linears_in_fp8_and_keeps_norms_embeddings_and_modulation(tiny_diffusers):
    pipe = PusaPipeline.from_pretrained(tiny_diffusers, device="cpu", weights="fp8")
    dit = pipe.transformers[0]
    dtypes = {n: p.dtype for n, p in dit.named_parameters()}
    assert dtypes["blocks.0.attn1.to_q.weight"] == FP8
    assert dtypes["blocks.1.ffn.net.2.weight"] == FP8
    for kept in ("proj_out.weight", "patch_embedding.weight", "condition_embedder.time_proj.weight", "scale_shift_table",
                 "blocks.0.scale_shift_table", "blocks.0.norm2.weight", "blocks.0.attn1.norm_q.weight"):
        assert dtypes[kept] == torch.float32, kept
    assert pipe.speed.weights == "fp8"


def test_fp8_output_close_to_full_precision(tiny_diffusers):
    s = GenerationSettings.parse({"prompt": "a red square moves right", "steps": 3, "seed": 11, "size": "64x48",
                                  "task": "t2v"})
    full = PusaPipeline.from_pretrained(tiny_diffusers, device="cpu").generate(s)
    fp8 = PusaPipeline.from_pretrained(tiny_diffusers, device="cpu", weights="fp8").generate(s)
    db = psnr(full.frames, fp8.frames)
    log.warning("fp8 vs fp32 on the tiny model: %.1f dB PSNR", db)  # shown with -rA / in the test log
    assert 30.0 <= db < float("inf")  # close, and really computed with other weights


def test_fp8_parameter_bytes_at_14b_are_at_most_055_of_bf16():
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
    from bench_scale import dit_config

    from pusa.speed.scale import meta_dit

    config = dit_config()
    bf16 = parameter_bytes(meta_dit(config, SpeedOptions()))
    fp8 = parameter_bytes(meta_dit(config, SpeedOptions(weights="fp8")))
    assert 26 * 2**30 < bf16 < 28 * 2**30  # the 14B DiT in bf16 (fp32 norms and modulation tables)
    assert fp8 <= 0.55 * bf16


def test_fp8_lora_is_merged_before_casting_and_remerged_exactly(tiny_diffusers, lora_file):
    pipe = PusaPipeline.from_pretrained(tiny_diffusers, device="cpu", lora=lora_file, weights="fp8")
    reference = PusaPipeline.from_pretrained(tiny_diffusers, device="cpu", use_default_lora=False)
    merged = pipe.loras[0]
    weight = dict(pipe.transformers[0].named_modules())[LORA_TARGET].weight
    entry = merged.loras[0].modules[LORA_TARGET]
    original = dict(reference.transformers[0].named_modules())[LORA_TARGET].weight.detach().float()

    merged.set_scales([0.8])
    by_hand = (original + 0.8 * entry.scale * (entry.B.float() @ entry.A.float())).to(FP8)
    assert weight.dtype == FP8
    assert torch.equal(weight.view(torch.uint8), by_hand.view(torch.uint8))  # summed in fp32, cast once
    first = weight.detach().clone()
    merged.set_scales([0.3])
    assert not torch.equal(weight.view(torch.uint8), first.view(torch.uint8))
    merged.set_scales([0.8])
    assert torch.equal(weight.view(torch.uint8), first.view(torch.uint8))


def test_unknown_weights_mode_is_an_input_error(tiny_diffusers):
    with pytest.raises(InputError, match="weights: 'int4'"):
        PusaPipeline.from_pretrained(tiny_diffusers, device="cpu", weights="int4")
