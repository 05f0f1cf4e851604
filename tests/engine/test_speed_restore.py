"""Alpha changes without a host copy of the original weights (issue 11, item 7): the LoRA targets are
read back from the checkpoint's memory-mapped safetensors, bit-identically."""

from __future__ import annotations

import pytest
import torch

from pusa.loading.lora import MergedLoras, load_lora
from pusa.pipeline import PusaPipeline
from pusa.speed.restore import checkpoint_source
from pusa.testing.layouts import make_tiny_dit, write_lora

TARGET = "blocks.1.ffn.net.0.proj"


@pytest.fixture(scope="module")
def lora_file(tmp_path_factory):
    return write_lora(tmp_path_factory.mktemp("lora") / "pusa.safetensors", make_tiny_dit(0), rank=4, seed=7)


def _weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("fixture", ["tiny_diffusers", "tiny_original"])
def test_alpha_a_b_a_is_bit_identical_with_no_host_copy(fixture, request, lora_file):
    folder = request.getfixturevalue(fixture)
    pipe = PusaPipeline.from_pretrained(folder, device="cpu", lora=lora_file)
    merged = pipe.loras[0]
    assert merged.host_copy_bytes == 0  # every original comes from the memory-mapped file
    dit = pipe.transformers[0]
    merged.set_scales([0.7])
    first = _weights(dit)
    merged.set_scales([1.6])
    assert not _equal(first, _weights(dit))
    merged.set_scales([0.7])
    assert _equal(first, _weights(dit))

    # the same merge from host copies (the old way) gives the same bits
    plain = PusaPipeline.from_pretrained(folder, device="cpu", use_default_lora=False)
    copies = MergedLoras(plain.transformers[0], [load_lora(lora_file)])
    assert copies.host_copy_bytes > 0
    copies.set_scales([0.7])
    assert _equal(first, _weights(plain.transformers[0]))


def test_a_weight_that_differs_from_the_file_is_copied(tiny_diffusers, lora_file):
    pipe = PusaPipeline.from_pretrained(tiny_diffusers, device="cpu", use_default_lora=False)
    dit = pipe.transformers[0]
    module = dict(dit.named_modules())[TARGET]
    with torch.no_grad():
        module.weight.add_(0.25)  # the model in memory no longer matches the checkpoint
    changed = module.weight.detach().clone()
    source = checkpoint_source(tiny_diffusers / "transformer", False, torch.float32)
    merged = MergedLoras(dit, [load_lora(lora_file)], source=source)
    assert merged.host_copy_bytes == changed.numel() * changed.element_size()  # that one weight only
    merged.set_scales([1.0])
    merged.set_scales([0.0])
    assert torch.equal(module.weight, changed)  # restored from the copy, not from the stale file


def test_fp8_alpha_changes_restore_from_the_file_exactly(tiny_diffusers, lora_file):
    pipe = PusaPipeline.from_pretrained(tiny_diffusers, device="cpu", lora=lora_file, weights="fp8")
    merged, dit = pipe.loras[0], pipe.transformers[0]
    assert merged.host_copy_bytes == 0
    merged.set_scales([0.4])
    first = {k: v.view(torch.uint8) if v.dtype == torch.float8_e4m3fn else v for k, v in _weights(dit).items()}
    merged.set_scales([1.2])
    merged.set_scales([0.4])
    again = {k: v.view(torch.uint8) if v.dtype == torch.float8_e4m3fn else v for k, v in _weights(dit).items()}
    assert _equal(first, again)


def test_no_source_without_safetensors(tmp_path):
    assert checkpoint_source(tmp_path, False, torch.float32) is None
