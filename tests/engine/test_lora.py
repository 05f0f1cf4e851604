"""LoRA files in every naming style merge to the same weights; alpha is per request and never piles up."""

import pytest
import torch
from safetensors.torch import save_file

from pusa.errors import LoraMismatchError, ModelLoadError
from pusa.loading.lora import MergedLoras, load_lora
from pusa.pipeline import PusaPipeline
from pusa.settings import GenerationSettings
from pusa.testing.layouts import named_lora_state_dict, make_lora_tensors, make_tiny_dit, write_lora


def _merged_state(path, alpha=1.0):
    model = make_tiny_dit(0)
    MergedLoras(model, [load_lora(path)]).set_scales([alpha])
    return model.state_dict()


@pytest.fixture(scope="module")
def base_dit():
    return make_tiny_dit(0)


def test_every_naming_style_merges_identically(tmp_path, base_dit):
    files = {
        "pusa_pt": write_lora(tmp_path / "pusa_v1.pt", base_dit, "pusa"),
        "pusa_wrapped": write_lora(tmp_path / "wrapped.pt", base_dit, "pusa", wrapped=True),
        "pusa_st": write_lora(tmp_path / "pusa.safetensors", base_dit, "pusa"),
        "original": write_lora(tmp_path / "orig.safetensors", base_dit, "original"),  # alpha == rank: scale 1
        "diffusers": write_lora(tmp_path / "diff.safetensors", base_dit, "diffusers"),
    }
    states = {k: _merged_state(p, 1.3) for k, p in files.items()}
    ref = states.pop("pusa_pt")
    base = base_dit.state_dict()
    changed = [k for k in ref if not torch.equal(ref[k], base[k])]
    assert len(changed) == 2 * 10  # 10 targets per block, 2 blocks
    for name, st in states.items():
        assert all(torch.equal(st[k], ref[k]) for k in ref), name


def test_prefixed_keys_and_kohya_alpha_scale(tmp_path, base_dit):
    tensors = make_lora_tensors(base_dit, rank=4, seed=0)
    state = named_lora_state_dict(tensors, "original", alpha=2.0)  # scale alpha / rank = 0.5
    save_file(state, str(tmp_path / "half.safetensors"))
    half = _merged_state(tmp_path / "half.safetensors", 1.0)
    pusa = named_lora_state_dict(tensors, "pusa")
    torch.save({f"diffusion_model.{k}": v for k, v in pusa.items()}, tmp_path / "prefixed.pt")
    ref = _merged_state(tmp_path / "prefixed.pt", 0.5)
    assert all(torch.allclose(half[k], ref[k], atol=1e-7) for k in ref)


def test_merge_math_is_w_plus_alpha_b_a(tmp_path, base_dit):
    path = write_lora(tmp_path / "l.pt", base_dit, "pusa")
    lora = load_lora(path)
    merged = _merged_state(path, 2.0)
    name = "blocks.1.attn2.to_v"
    expected = base_dit.state_dict()[name + ".weight"] + 2.0 * lora.modules[name].B @ lora.modules[name].A
    assert torch.allclose(merged[name + ".weight"], expected, atol=1e-6)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
def test_alpha_sequence_is_bit_identical_to_a_fresh_merge(tmp_path, base_dit, dtype):
    path = write_lora(tmp_path / "l.pt", base_dit, "pusa")
    model = make_tiny_dit(0).to(dtype)
    merged = MergedLoras(model, [load_lora(path)])
    merged.set_scales([1.4])
    first = {k: v.clone() for k, v in model.state_dict().items()}
    for a in (0.7, 3.0, 0.0, 1.4):
        merged.set_scales([a])
    fresh = make_tiny_dit(0).to(dtype)
    MergedLoras(fresh, [load_lora(path)]).set_scales([1.4])
    for k in first:
        assert torch.equal(model.state_dict()[k], first[k]), k
        assert torch.equal(fresh.state_dict()[k], first[k]), k
    merged.set_scales([0.0])
    base = make_tiny_dit(0).to(dtype).state_dict()
    assert all(torch.equal(model.state_dict()[k], base[k]) for k in base)
    assert merged.set_scales([0.0]) is False  # unchanged alpha: no re-merge


def test_lora_for_another_model_says_how_many_matched(tmp_path, base_dit):
    bigger = make_tiny_dit(0, num_layers=3)
    path = write_lora(tmp_path / "l.pt", bigger, "pusa")
    with pytest.raises(LoraMismatchError, match=r"20 of 30 LoRA modules match the model; e.g. 'blocks.2"):
        MergedLoras(make_tiny_dit(0), [load_lora(path)])
    wide = make_tiny_dit(0, ffn_dim=96)
    path = write_lora(tmp_path / "w.pt", wide, "pusa")
    with pytest.raises(LoraMismatchError, match="do not fit the layer"):
        MergedLoras(make_tiny_dit(0), [load_lora(path)])


def test_files_that_are_not_loras(tmp_path):
    torch.save({"foo.weight": torch.zeros(2)}, tmp_path / "x.pt")
    with pytest.raises(ModelLoadError, match="1 keys are not LoRA weights"):
        load_lora(tmp_path / "x.pt")
    with pytest.raises(ModelLoadError, match="LoRA file not found"):
        load_lora(tmp_path / "missing.pt")
    torch.save({"blocks.0.self_attn.q.lora_A.default.weight": torch.zeros(2, 2)}, tmp_path / "half.pt")
    with pytest.raises(ModelLoadError, match="only one of its two LoRA matrices"):
        load_lora(tmp_path / "half.pt")


def test_pipeline_alpha_a_b_a_equals_fresh_process(tiny_diffusers, tmp_path):
    lora = write_lora(tmp_path / "pusa_v1.pt", make_tiny_dit(0), "pusa")
    s = GenerationSettings.parse(prompt="ball", steps=2, seed=3, cfg=1.0, lora_alpha=1.4)
    pipe = PusaPipeline.from_pretrained(tiny_diffusers, lora=lora, device="cpu")
    a1 = pipe.generate(s).frames
    b = pipe.generate(s.model_copy(update={"lora_alpha": 4.0})).frames
    a2 = pipe.generate(s).frames
    fresh = PusaPipeline.from_pretrained(tiny_diffusers, lora=lora, device="cpu").generate(s).frames
    assert (a1 == a2).all() and (a1 == fresh).all()
    assert not (a1 == b).all()


def test_second_lora_stacks_with_its_own_scale(tiny_diffusers, tmp_path):
    pusa = write_lora(tmp_path / "pusa.pt", make_tiny_dit(0), "pusa", seed=1)
    extra = write_lora(tmp_path / "distill.safetensors", make_tiny_dit(0), "diffusers", seed=2)
    pipe = PusaPipeline.from_pretrained(tiny_diffusers, lora=pusa, extra_lora=extra, device="cpu")
    s = GenerationSettings.parse(prompt="ball", steps=1, seed=3, cfg=1.0, lora_alpha=1.0, extra_lora_scale=0.0)
    pipe.apply_lora_scales(s)
    only_pusa = {k: v.clone() for k, v in pipe.transformers[0].state_dict().items()}
    pipe.apply_lora_scales(s.model_copy(update={"extra_lora_scale": 1.0}))
    both = pipe.transformers[0].state_dict()
    k = "blocks.0.attn1.to_q.weight"
    e = load_lora(extra).modules["blocks.0.attn1.to_q"]
    assert torch.allclose(both[k], only_pusa[k] + e.B @ e.A, atol=1e-6)
    assert len(pipe.lora_paths) == 2
