"""Real layouts load through the real loaders, and broken folders fail with a precise message."""

import json
import shutil

import pytest
import torch

from pusa.errors import ModelLoadError
from pusa.loading.components import load_text_encoder, load_transformer, load_vae
from pusa.loading.layout import detect_layout
from pusa.pipeline import PusaPipeline
from pusa.settings import GenerationSettings
from pusa.testing.layouts import make_tiny_dit, write_tiny_wan21_original


def test_layouts_are_detected(tiny_original, tiny_diffusers, tiny_wan22):
    assert detect_layout(tiny_original).kind == "wan2.1-original"
    assert detect_layout(tiny_diffusers).kind == "diffusers"
    w22 = detect_layout(tiny_wan22)
    assert w22.kind == "wan2.2-original" and w22.is_wan22 and w22.family.boundary == 0.875


def test_original_layout_weights_equal_the_source_model(tiny_original):
    ref = make_tiny_dit(0).state_dict()
    loaded = load_transformer(tiny_original, original=True, dtype=torch.float32).state_dict()
    assert set(ref) == set(loaded)
    assert all(torch.equal(ref[k], loaded[k]) for k in ref)


def test_original_and_diffusers_layouts_make_the_same_video(tiny_original, tiny_diffusers):
    """Same weights stored two ways: identical frames prove the T5, VAE and DiT conversions."""
    s = GenerationSettings.parse(prompt="a blue square", steps=2, seed=11, cfg=3.0)
    a = PusaPipeline.from_pretrained(tiny_original, device="cpu").generate(s)
    b = PusaPipeline.from_pretrained(tiny_diffusers, device="cpu").generate(s)
    assert a.frames.shape == b.frames.shape == (9, 64, 64, 3)
    assert (a.frames == b.frames).all()


def test_bf16_loading_keeps_fp32_modules(tiny_original):
    model = load_transformer(tiny_original, original=True, dtype=torch.bfloat16)
    assert model.blocks[0].attn1.to_q.weight.dtype == torch.bfloat16
    assert model.scale_shift_table.dtype == torch.float32


def _copy(src, dst):
    shutil.copytree(src, dst)
    return dst


def test_missing_shard_is_named(tiny_original, tmp_path):
    root = _copy(tiny_original, tmp_path / "m")
    (root / "diffusion_pytorch_model-00002-of-00002.safetensors").unlink()
    with pytest.raises(ModelLoadError, match=r"shard diffusion_pytorch_model-00002-of-00002.safetensors .* missing"):
        PusaPipeline.from_pretrained(root, device="cpu")


def test_config_that_does_not_fit_the_weights(tiny_original, tmp_path):
    root = _copy(tiny_original, tmp_path / "m")
    cfg = json.loads((root / "config.json").read_text())
    cfg["num_layers"] = 40
    (root / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelLoadError, match="config.json says 40 layers, the weights have 2"):
        load_transformer(root, original=True, dtype=torch.float32)
    cfg["num_layers"], cfg["ffn_dim"] = 2, 128
    (root / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelLoadError, match=r"has shape \(64, 32\) in the checkpoint but the model needs \(128, 32\)"):
        load_transformer(root, original=True, dtype=torch.float32)


def test_missing_components_are_named(tiny_original, tmp_path):
    root = _copy(tiny_original, tmp_path / "m")
    (root / "Wan2.1_VAE.pth").unlink()
    with pytest.raises(ModelLoadError, match="Wan VAE not found"):
        detect_layout(root)
    with pytest.raises(ModelLoadError, match="not a recognised model folder"):
        detect_layout(tmp_path)
    with pytest.raises(ModelLoadError, match="model folder not found"):
        detect_layout(tmp_path / "nope")


def test_wan22_needs_both_experts(tiny_wan22, tmp_path):
    root = _copy(tiny_wan22, tmp_path / "m")
    shutil.rmtree(root / "low_noise_model")
    with pytest.raises(ModelLoadError, match="low_noise_model folder not found"):
        detect_layout(root)


class _Evil:
    """Unpickling this creates the file ``path``: the mark of code run by the loader."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


@pytest.mark.parametrize("component", ["vae", "text_encoder"])
def test_pickles_are_loaded_without_running_code(tmp_path, component):
    mark = tmp_path / "payload-ran"
    path = tmp_path / ("Wan2.1_VAE.pth" if component == "vae" else "models_t5_umt5-xxl-enc-bf16.pth")
    torch.save({"encoder.conv1.weight": _Evil(mark)}, str(path))
    control = tmp_path / "control.pth"
    torch.save({"encoder.conv1.weight": _Evil(tmp_path / "control-ran")}, str(control))
    torch.load(str(control), weights_only=False)  # the payload is live...
    assert (tmp_path / "control-ran").exists()
    loader = load_vae if component == "vae" else load_text_encoder
    with pytest.raises(ModelLoadError, match="weights_only=True|not a loadable weights file"):
        loader(path, torch.float32)
    assert not mark.exists()  # ...and the loader never ran it


def test_sharded_index_without_shards_and_shards_without_index(tmp_path):
    root = write_tiny_wan21_original(tmp_path / "m", shards=2)
    (root / "diffusion_pytorch_model.safetensors.index.json").unlink()
    with pytest.raises(ModelLoadError, match="found 2 shards but no diffusion_pytorch_model.safetensors.index.json"):
        load_transformer(root, original=True, dtype=torch.float32)
