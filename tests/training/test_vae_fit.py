"""The VAE trainer's fast paths: a first frame as 2-D convolutions (exact, and really 2-D), the
loss taken before diffusers' clamp, and the data set's caption file written only when complete."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from pusa.training import synthetic, tiny
from pusa.training.vae_fit import decode_unclamped, first_frames_as_2d


@pytest.fixture(scope="module")
def vae():
    return tiny.make_vae(3, base_dim=4, **tiny.BUILD_VAE_CONFIG).eval()


@pytest.mark.parametrize("frames", [1, 5])
def test_first_frames_as_2d_gives_the_same_latents_and_pixels(vae, frames):
    x = torch.rand(2, 3, frames, 16, 24, generator=torch.Generator().manual_seed(frames)) * 2 - 1
    with torch.no_grad():
        z = vae.encode(x).latent_dist.mode()
        ref = vae.decode(z).sample
        with first_frames_as_2d(vae):
            z2 = vae.encode(x).latent_dist.mode()
            out = decode_unclamped(vae, z2).clamp(-1, 1)
    assert torch.allclose(z2, z, atol=1e-5) and torch.allclose(out, ref, atol=1e-5)
    assert not any("forward" in m.__dict__ for m in vae.modules()), "the patch is removed on exit"


def test_first_frames_as_2d_gradients_match(vae):
    x = torch.rand(2, 3, 1, 16, 16, generator=torch.Generator().manual_seed(0)) * 2 - 1
    conv = vae.encoder.conv_in

    def grad():
        vae.zero_grad()
        decode_unclamped(vae, vae.encode(x).latent_dist.mode()).square().mean().backward()
        return conv.weight.grad.clone()

    ref = grad()
    with first_frames_as_2d(vae):
        fast = grad()
    assert torch.allclose(fast, ref, rtol=1e-4, atol=1e-7)
    assert fast[:, :, :-1].abs().max() == 0, "earlier temporal taps only ever see causal zero padding"
    vae.zero_grad()


def test_a_lone_first_frame_runs_no_3d_convolution(vae, monkeypatch):
    calls = []
    real = torch.nn.functional.conv3d
    monkeypatch.setattr(torch.nn.functional, "conv3d", lambda *a, **k: calls.append(a[0].shape) or real(*a, **k))
    x = torch.rand(1, 3, 1, 16, 16) * 2 - 1
    with torch.no_grad():
        with first_frames_as_2d(vae):
            decode_unclamped(vae, vae.encode(x).latent_dist.mode())
        assert not calls
        vae.decode(vae.encode(x).latent_dist.mode())
    assert calls, "outside the context the causal convolutions are 3-D again"


def test_decode_unclamped_keeps_overshoot(vae):
    z = torch.randn(1, 16, 2, 2, 2, generator=torch.Generator().manual_seed(1)) * 50
    with torch.no_grad():
        raw = decode_unclamped(vae, z)
        clamped = vae.decode(z).sample
    assert raw.abs().max() > 1.0, "this latent overshoots"
    assert torch.allclose(raw.clamp(-1, 1), clamped, atol=1e-5)


def test_single_frame_phases_draw_from_the_picture_bank(vae):
    """A picture bank serves frames=1 (every one distinct); clip phases keep using the clips."""
    pictures = np.full((3, 3, 1, 16, 16), 0.25, np.float32)
    clips = np.full((2, 3, 9, 16, 16), -0.75, np.float32)
    seen = []
    model = tiny.make_vae(3, base_dim=4, **tiny.BUILD_VAE_CONFIG)
    real = model.encode
    model.encode = lambda x: seen.append(float(x.mean())) or real(x)
    tiny.train_vae(model, seed=0, steps=1, batch=2, frames=1, crop=16, bank=clips, pictures=pictures)
    tiny.train_vae(model, seed=0, steps=1, batch=2, frames=5, crop=16, bank=clips, pictures=pictures)
    assert seen == [pytest.approx(0.25), pytest.approx(-0.75)]


def test_make_dataset_writes_its_caption_file_only_when_complete(tmp_path, monkeypatch):
    real = synthetic.write_video
    calls = []

    def failing(path, frames, fps):
        calls.append(path)
        if len(calls) == 3:
            raise OSError("disk full")
        real(path, frames, fps=fps)

    monkeypatch.setattr(synthetic, "write_video", failing)
    with pytest.raises(OSError):
        synthetic.make_dataset(tmp_path / "d", 4, seed=0, width=32, height=32, frames=5)
    assert not (tmp_path / "d" / "metadata.jsonl").exists()
    assert not list((tmp_path / "d").glob(".metadata.jsonl.*")), "no temporary file is left"
    monkeypatch.setattr(synthetic, "write_video", real)
    synthetic.make_dataset(tmp_path / "d", 4, seed=0, width=32, height=32, frames=5)
    rows = [json.loads(line) for line in (tmp_path / "d" / "metadata.jsonl").read_text().splitlines()]
    assert len(rows) == 4
