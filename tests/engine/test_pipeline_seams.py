"""The pipeline's public steps: prepare -> denoise -> decode compose to generate, latents can be
handed in directly (anchors), and decode reports and cancels per latent frame."""

import numpy as np
import pytest
import torch

from pusa.conditions import Anchor
from pusa.errors import GenerationCancelled, InputError
from pusa.pipeline import seeded_noise
from pusa.settings import GenerationSettings

from .helpers import gradient_image


def _settings(**kw):
    return GenerationSettings.parse({"prompt": "a red square moves right", "steps": 2, "seed": 9, **kw})


def test_the_steps_compose_to_generate(tiny_pipe):
    s = tiny_pipe.validate(_settings(task="i2v"), n_images=1)
    images, _ = tiny_pipe.read_inputs(s, [gradient_image(seed=4)], None)
    prepared = tiny_pipe.prepare(s, images)
    latents, model = tiny_pipe.denoise(prepared, seeded_noise(prepared.shape, s.seed))
    frames = tiny_pipe.decode(latents)
    whole = tiny_pipe.generate(_settings(task="i2v"), images=[gradient_image(seed=4)], return_latents=True)
    assert torch.equal(latents, whole.latents) and np.array_equal(frames, whole.frames)
    assert model.experts == whole.experts == ["single", "single"]


def test_anchor_latents_are_kept_bit_exact_without_a_vae_round_trip(tiny_pipe):
    s = tiny_pipe.validate(_settings(task="t2v"))
    shape = tiny_pipe.latent_shape(s)
    anchor = torch.randn(1, shape[1], shape[3], shape[4], generator=torch.Generator().manual_seed(1))
    prepared = tiny_pipe.prepare(s, anchors={1: Anchor(anchor, 0.0), 2: Anchor(anchor * 0.5, 0.3)})
    assert prepared.conditions.multipliers.tolist() == [1.0, 0.0, 0.3]
    latents, _ = tiny_pipe.denoise(prepared, seeded_noise(shape, s.seed))
    assert torch.equal(latents[:, :, 1], anchor)  # multiplier 0: never touched
    assert not torch.equal(latents[:, :, 2], anchor * 0.5)  # 0.3: refined
    result = tiny_pipe.generate(_settings(task="t2v"), anchors={1: Anchor(anchor, 0.0)}, return_latents=True)
    assert torch.equal(result.latents[:, :, 1], anchor)


def test_anchor_on_a_task_position_is_refused(tiny_pipe):
    s = tiny_pipe.validate(_settings(task="i2v"), n_images=1)
    images, _ = tiny_pipe.read_inputs(s, [gradient_image()], None)
    shape = tiny_pipe.latent_shape(s)
    with pytest.raises(InputError, match="position 0 is already held"):
        tiny_pipe.prepare(s, images, anchors={0: Anchor(torch.zeros(1, shape[1], shape[3], shape[4]), 0.0)})


def test_decode_is_vae_decode_reported_and_cancellable_per_frame(tiny_pipe):
    s = tiny_pipe.validate(_settings(task="t2v", frames=13))
    latents = seeded_noise(tiny_pipe.latent_shape(s), 2)
    seen = []
    frames = tiny_pipe.decode(latents, lambda info: seen.append((info.phase, info.step, info.total)))
    assert seen == [("decode", i, 4) for i in range(1, 5)]
    codec = tiny_pipe.codec
    with torch.no_grad():
        ref = tiny_pipe.vae.decode(latents * codec.std + codec.mean, return_dict=False)[0]
    ref = ((ref.clamp(-1, 1) + 1.0) * 127.5).round().to(torch.uint8)[0].permute(1, 2, 3, 0).numpy()
    assert np.array_equal(frames, ref)  # frame by frame through the causal cache == diffusers' decode

    def cancel_after_two(info):
        if info.step == 2:
            raise GenerationCancelled("stop")

    with pytest.raises(GenerationCancelled):
        tiny_pipe.decode(latents, cancel_after_two)
    assert np.array_equal(tiny_pipe.decode(latents), frames)  # the causal cache was cleared


def test_encode_is_vae_encode_reported_and_cancellable_per_chunk(tiny_pipe):
    px = torch.rand(1, 3, 13, 48, 64, generator=torch.Generator().manual_seed(3)) * 2 - 1
    seen = []
    z = tiny_pipe.codec.encode(px, lambda done, total: seen.append((done, total)))
    assert seen == [(1, 4), (2, 4), (3, 4), (4, 4)]  # first frame, then 3 chunks of 4 frames
    codec = tiny_pipe.codec
    with torch.no_grad():
        ref = (tiny_pipe.vae.encode(px).latent_dist.mode() - codec.mean) / codec.std
    assert torch.equal(z, ref)

    def cancel(done, total):
        if done == 2:
            raise GenerationCancelled("stop")

    with pytest.raises(GenerationCancelled):
        codec.encode(px, cancel)
    assert torch.equal(codec.encode(px), z)
