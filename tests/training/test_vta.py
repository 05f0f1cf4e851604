"""The VTA objective: timestep table, per-frame draws, noising and weighting."""

from __future__ import annotations

import torch

from pusa.training.vta import (TimestepTable, noisy_input, sample_frame_sigmas, token_timesteps, vta_loss)


def test_table_is_shifted_flow_matching_schedule():
    t = TimestepTable.create(shift=5.0)
    assert t.sigmas.shape == (1000,)
    assert float(t.sigmas[0]) == 1.0
    assert bool((t.sigmas[:-1] > t.sigmas[1:]).all())
    u = 0.5
    assert float(t.sigmas[500]) == torch.tensor(5 * u / (1 + 4 * u)).float().item()
    assert torch.allclose(t.timesteps, t.sigmas * 1000)


def test_bell_weights_favour_mid_noise_and_vanish_at_sigma_zero():
    t = TimestepTable.create(weighting="bell")
    assert abs(float(t.weights.mean()) - 1.0) < 1e-4
    mid = t.weight_of(torch.tensor([0.5]))
    ends = t.weight_of(torch.tensor([0.999, 0.0]))
    assert float(mid) > float(ends.max())
    assert float(t.weight_of(torch.tensor([0.0]))) == 0.0
    assert torch.allclose(TimestepTable.create(weighting="none").weight_of(torch.tensor([0.3, 0.7])),
                          torch.ones(2))


def test_vta_draws_differ_per_frame_uniform_draws_do_not():
    table = TimestepTable.create()
    g = torch.Generator().manual_seed(0)
    vta = sample_frame_sigmas(table, 8, 5, mode="vta", cond_prob=0.0, generator=g)
    uni = sample_frame_sigmas(table, 8, 5, mode="uniform", cond_prob=0.0, generator=g)
    assert vta.shape == uni.shape == (8, 5)
    assert bool((vta.std(dim=1) > 0).all())
    assert bool((uni == uni[:, :1]).all())


def test_condition_like_draws_lower_some_frames():
    table = TimestepTable.create()
    g1 = torch.Generator().manual_seed(1)
    g2 = torch.Generator().manual_seed(1)
    plain = sample_frame_sigmas(table, 64, 5, mode="uniform", cond_prob=0.0, generator=g1)
    cond = sample_frame_sigmas(table, 64, 5, mode="uniform", cond_prob=1.0, generator=g2)
    assert bool((cond <= plain + 1e-7).all())
    assert bool(((cond[:, 0] < plain[:, 0]) | (cond[:, -1] < plain[:, -1])).float().mean() > 0.5)
    assert bool((cond == 0).any())


def test_noising_and_token_timesteps_are_per_frame():
    x0 = torch.randn(2, 16, 3, 4, 4)
    eps = torch.randn_like(x0)
    sigma = torch.tensor([[0.0, 0.5, 1.0], [0.25, 0.25, 0.75]])
    xs = noisy_input(x0, eps, sigma)
    assert torch.equal(xs[0, :, 0], x0[0, :, 0])
    assert torch.allclose(xs[0, :, 2], eps[0, :, 2])
    assert torch.allclose(xs[1, :, 2], 0.25 * x0[1, :, 2] + 0.75 * eps[1, :, 2])
    t = token_timesteps(sigma, 4)
    assert t.shape == (2, 12)
    assert t[0].tolist() == [0.0] * 4 + [500.0] * 4 + [1000.0] * 4


def test_loss_is_zero_for_the_exact_target_and_ignores_clean_frames():
    table = TimestepTable.create()
    x0, eps = torch.randn(1, 16, 2, 4, 4), torch.randn(1, 16, 2, 4, 4)
    sigma = torch.tensor([[0.0, 0.6]])
    target = eps - x0
    assert float(vta_loss(target, x0, eps, sigma, table)) == 0.0
    wrong_clean = target.clone()
    wrong_clean[:, :, 0] += 5.0
    assert float(vta_loss(wrong_clean, x0, eps, sigma, table)) == 0.0
    wrong_noisy = target.clone()
    wrong_noisy[:, :, 1] += 1.0
    assert float(vta_loss(wrong_noisy, x0, eps, sigma, table)) > 0.1
