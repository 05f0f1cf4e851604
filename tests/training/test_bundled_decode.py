"""The fast decode of the bundled model: same pixels within a uint8 level, no state left behind, and on
for the bundled model through its pusa.json (off for any model that does not ask for it)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pusa.latent_codec import LatentCodec


@pytest.fixture(scope="module")
def vae():
    from diffusers import AutoencoderKLWan

    from pusa.bundled import BUNDLED_DIR

    return AutoencoderKLWan.from_pretrained(str(BUNDLED_DIR / "vae")).eval()


def test_a_non_boolean_switch_is_refused(vae):
    with pytest.raises(ValueError, match="fast_decode: 'onednn' is not allowed"):
        LatentCodec(vae, torch.device("cpu"), fast_decode="onednn")


def test_fast_decode_matches_the_exact_one_and_restores_the_model(vae, monkeypatch):
    import torch.nn.functional as F

    calls, normalized = [], []
    real, real_normalize = torch.mkldnn_convolution, F.normalize
    monkeypatch.setattr(torch, "mkldnn_convolution", lambda *a: calls.append(1) or real(*a))
    monkeypatch.setattr(F, "normalize", lambda *a, **k: normalized.append(1) or real_normalize(*a, **k))
    z = torch.randn(1, 16, 3, 8, 12, generator=torch.Generator().manual_seed(0))  # 96x64, 9 frames
    exact = LatentCodec(vae, torch.device("cpu")).decode(z)
    assert not calls and normalized  # the default keeps PyTorch's and diffusers' kernels (and the pinned outputs)
    normalized.clear()
    fast = LatentCodec(vae, torch.device("cpu"), fast_decode=True).decode(z)
    assert calls and not normalized
    assert exact.shape == fast.shape == (9, 64, 96, 3)
    assert np.abs(exact.astype(int) - fast.astype(int)).max() <= 1
    assert not any("_conv_forward" in m.__dict__ or "forward" in m.__dict__ for m in vae.modules())  # restored
    assert np.array_equal(LatentCodec(vae, torch.device("cpu")).decode(z), exact)


def test_fast_decode_of_a_bfloat16_vae_replaces_its_norms(vae, monkeypatch):
    """bf16 convolutions already run on oneDNN; the fast path swaps diffusers' float32 ``F.normalize``
    for the direct norm, still in float32, so the pixels stay those of the exact bf16 decode."""
    import copy

    import torch.nn.functional as F

    half = copy.deepcopy(vae).to(torch.bfloat16)
    normalized, real_normalize = [], F.normalize
    monkeypatch.setattr(F, "normalize", lambda *a, **k: normalized.append(1) or real_normalize(*a, **k))
    z = torch.randn(1, 16, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    exact = LatentCodec(half, torch.device("cpu")).decode(z)
    assert normalized
    normalized.clear()
    fast = LatentCodec(half, torch.device("cpu"), fast_decode=True).decode(z)
    assert not normalized
    diff = np.abs(exact.astype(int) - fast.astype(int))
    assert diff.max() <= 2 and diff.mean() < 0.05
    assert not any("forward" in m.__dict__ for m in half.modules())
    fp32 = LatentCodec(vae, torch.device("cpu")).decode(z)
    assert np.abs(fp32.astype(int) - fast.astype(int)).mean() < 2.0  # bf16 itself: a few levels at most


def test_the_bundled_model_decodes_fast_and_other_models_exactly(tmp_path):
    import json
    import shutil

    from pusa.bundled import BUNDLED_DIR
    from pusa.errors import ModelLoadError
    from pusa.loading.layout import detect_layout

    assert detect_layout(BUNDLED_DIR).fast_decode is True
    copy = tmp_path / "model"
    shutil.copytree(BUNDLED_DIR, copy)
    meta = json.loads((copy / "pusa.json").read_text())
    del meta["fast_decode"]
    (copy / "pusa.json").write_text(json.dumps(meta))
    assert detect_layout(copy).fast_decode is False
    (copy / "pusa.json").write_text(json.dumps({**meta, "fast_decode": "yes"}))
    with pytest.raises(ModelLoadError, match="fast_decode is 'yes'; expected true or false"):
        detect_layout(copy)
