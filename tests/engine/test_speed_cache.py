"""Step caches (issue 11, item 4): diffusers' First Block Cache and TaylorSeer with per-frame timesteps,
guidance branches kept apart, state reset per request, and the forwards/skipped count in the sidecar."""

from __future__ import annotations

import numpy as np
import pytest

from pusa.errors import InputError
from pusa.pipeline import PusaPipeline
from pusa.settings import GenerationSettings
from pusa.speed.caching import check_cache

from .helpers import gradient_image


def _run(pipe: PusaPipeline, steps: int = 8, cfg: float = 5.0):
    s = GenerationSettings.parse({"prompt": "a red square moves right", "steps": steps, "seed": 11, "size": "64x48",
                                  "task": "i2v", "noise_multipliers": "0.3", "cfg": cfg})
    return pipe.generate(s, images=[gradient_image(seed=3)], return_latents=True)


@pytest.fixture(scope="module")
def uncached(tiny_diffusers):
    return _run(PusaPipeline.from_pretrained(tiny_diffusers, device="cpu"))


def test_uncached_run_counts_every_forward_in_the_sidecar(uncached):
    assert uncached.stats == {"forwards": 16, "skipped": 0}  # 8 steps x 2 guidance branches
    assert uncached.metadata()["stats"] == {"forwards": 16, "skipped": 0}


def test_fbcache_at_threshold_zero_changes_nothing(tiny_diffusers, uncached):
    pipe = PusaPipeline.from_pretrained(tiny_diffusers, device="cpu", cache="fbcache", cache_threshold=0.0)
    r = _run(pipe)
    assert r.stats == {"forwards": 16, "skipped": 0}
    assert (r.latents == uncached.latents).all()


def test_fbcache_skips_forwards_per_branch_and_resets_per_request(tiny_diffusers, uncached):
    pipe = PusaPipeline.from_pretrained(tiny_diffusers, device="cpu", cache="fbcache", cache_threshold=0.5)
    first, second = _run(pipe), _run(pipe)
    assert first.stats["forwards"] == 16 and first.stats["skipped"] >= 4
    assert first.metadata()["stats"] == first.stats
    assert second.stats == first.stats and (second.latents == first.latents).all()  # no state leaks across requests
    assert not (first.latents == uncached.latents).all()
    assert float((first.latents - uncached.latents).abs().max()) < 1.0


def test_taylorseer_predicts_blocks_between_refresh_steps(tiny_diffusers, uncached):
    pipe = PusaPipeline.from_pretrained(tiny_diffusers, device="cpu", cache="taylorseer")
    r = _run(pipe)
    assert r.stats["forwards"] == 16 and r.stats["skipped"] >= 4
    assert float((r.latents - uncached.latents).abs().max()) < 1.0


def test_wan22_experts_each_keep_their_cache(tiny_wan22):
    pipe = PusaPipeline.from_pretrained(tiny_wan22, device="cpu", cache="fbcache", cache_threshold=0.5)
    r = _run(pipe, steps=8, cfg=1.0)
    assert r.experts.count("high") > 0 and r.experts.count("low") > 0
    assert r.stats["forwards"] == 8 and 0 < r.stats["skipped"] < 8
    assert np.isfinite(r.latents.numpy()).all()


@pytest.mark.parametrize("mode, threshold, field", [("magcache", 1.5, "cache_threshold"),
                                                    ("teacache", None, "cache: 'teacache'"),
                                                    ("taylorseer", 0.1, "cache_threshold"),
                                                    ("fbcache", 2.0, "cache_threshold")])
def test_bad_cache_options_are_input_errors(mode, threshold, field):
    with pytest.raises(InputError, match=field):
        check_cache(mode, threshold)
