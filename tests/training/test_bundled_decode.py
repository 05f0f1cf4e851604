"""The opt-in oneDNN decode of the bundled model: same pixels within a uint8 level, no state left behind."""

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


def test_unknown_backend_is_refused(vae):
    with pytest.raises(ValueError, match="conv_backend: 'fast' is not allowed"):
        LatentCodec(vae, torch.device("cpu"), conv_backend="fast")


def test_onednn_decode_matches_the_exact_one_and_restores_the_model(vae, monkeypatch):
    calls = []
    real = torch.mkldnn_convolution
    monkeypatch.setattr(torch, "mkldnn_convolution", lambda *a: calls.append(1) or real(*a))
    z = torch.randn(1, 16, 3, 8, 12, generator=torch.Generator().manual_seed(0))  # 96x64, 9 frames
    exact = LatentCodec(vae, torch.device("cpu")).decode(z)
    assert not calls  # the default keeps PyTorch's own kernel choice (and the pinned outputs)
    fast = LatentCodec(vae, torch.device("cpu"), conv_backend="onednn").decode(z)
    assert calls
    assert exact.shape == fast.shape == (9, 64, 96, 3)
    assert np.abs(exact.astype(int) - fast.astype(int)).max() <= 1
    assert not any("_conv_forward" in m.__dict__ for m in vae.modules())  # un-patched after the decode
    assert np.array_equal(LatentCodec(vae, torch.device("cpu")).decode(z), exact)
