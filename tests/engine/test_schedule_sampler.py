import math

import pytest
import torch

from pusa.sampler import initial_latents, sample
from pusa.schedule import frame_multipliers, frame_sigmas, frame_timesteps, inference_sigmas


def test_sigmas_match_hand_computed_values():
    s = inference_sigmas(4, shift=5.0)
    # u = 1, .75, .5, .25 ; s = 5u / (1 + 4u)
    expected = [1.0, 3.75 / 4.0, 2.5 / 3.0, 1.25 / 2.0, 0.0]
    assert s.tolist() == pytest.approx(expected, abs=1e-15)
    assert s.dtype == torch.float64


def test_shift_one_is_linear_and_ten_steps_first_values():
    assert inference_sigmas(2, shift=1.0).tolist() == pytest.approx([1.0, 0.5, 0.0])
    s = inference_sigmas(10, 5.0)
    assert s[1].item() == pytest.approx(5 * 0.9 / (1 + 4 * 0.9))
    assert len(s) == 11 and s[-1] == 0


def test_frame_table_and_integer_timesteps():
    m = frame_multipliers(5, [0, 4], [0.2, 0.0])
    assert m.tolist() == [0.2, 1, 1, 1, 0.0]
    table = frame_sigmas(inference_sigmas(2, 5.0), m)
    assert table.shape == (3, 5)
    assert table[0].tolist() == pytest.approx([0.2, 1, 1, 1, 0])
    t = frame_timesteps(table[1])
    assert t.tolist() == [math.trunc(1000 * 0.2 * 2.5 / 3.0), 833, 833, 833, 0]


def test_multipliers_reject_mismatched_lengths():
    with pytest.raises(ValueError):
        frame_multipliers(5, [0, 1], [0.2])


class RecordingModel:
    """A velocity model that depends on x and t so that any wrong frame update shows."""

    def __init__(self):
        self.seen = []

    def __call__(self, x, t, step):
        self.seen.append(t.clone())
        return torch.sin(x * 3.0) + t.view(1, 1, -1, 1, 1) / 1000.0


def test_multiplier_zero_frames_are_bit_exact_and_others_change():
    g = torch.Generator().manual_seed(0)
    noise = torch.randn(1, 16, 5, 4, 4, generator=g)
    cond = torch.randn(1, 16, 5, 4, 4, generator=g)
    m = frame_multipliers(5, [0, 2], [0.0, 0.3])
    model = RecordingModel()
    out = sample(model, noise, inference_sigmas(6, 5.0), m, cond)
    assert torch.equal(out[:, :, 0], cond[:, :, 0])  # bit-exact
    assert not torch.equal(out[:, :, 2], cond[:, :, 2])  # m = 0.3 moves
    assert not torch.allclose(out[:, :, 1], noise[:, :, 1])
    # the DiT saw the condition frame at t = 0 on every step and the 0.3 frame at 0.3 * global
    assert all(t[0] == 0 for t in model.seen)
    assert model.seen[0].tolist()[1] == 1000 and model.seen[0].tolist()[2] == 300


def test_initial_latents_follow_the_flow_matching_interpolation():
    noise, cond = torch.ones(1, 1, 3, 1, 1), torch.zeros(1, 1, 3, 1, 1)
    x = initial_latents(noise, cond, torch.tensor([0.0, 0.25, 1.0], dtype=torch.float64))
    assert x.flatten().tolist() == [0.0, 0.25, 1.0]


def test_euler_step_uses_per_frame_sigma_differences():
    noise = torch.zeros(1, 1, 2, 1, 1)
    m = torch.tensor([1.0, 0.5], dtype=torch.float64)
    s = inference_sigmas(1, 1.0)  # [1, 0]
    out = sample(lambda x, t, k: torch.ones_like(x), noise, s, m, cond=torch.zeros_like(noise))
    # x_f += v * (0 - s_0 m_f): frame0 -> -1, frame1 -> -0.5
    assert out.flatten().tolist() == [-1.0, -0.5]


def test_callback_sees_every_step_and_can_stop():
    from pusa.errors import GenerationCancelled

    seen = []

    def cb(step):
        seen.append((step.step, step.total))
        if step.step == 2:
            raise GenerationCancelled()

    with pytest.raises(GenerationCancelled):
        sample(lambda x, t, k: x, torch.zeros(1, 1, 1, 1, 1), inference_sigmas(5), torch.ones(1, dtype=torch.float64),
               callback=cb)
    assert seen == [(1, 5), (2, 5)]
