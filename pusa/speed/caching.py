"""Step caches from diffusers' hooks, and how many DiT forwards they skipped.

``fbcache``     First Block Cache: when the first block's residual changed by less than the
                threshold (relative mean absolute difference) since the last full forward, the
                other blocks are skipped and their last residual reused.
``taylorseer``  TaylorSeer: every block's output is computed on refresh steps and predicted by a
                Taylor series in between (``cache_interval`` steps; the threshold is unused).

``magcache``    MagCache: skips a forward while the accumulated change of the residual's magnitude,
                predicted from ratios calibrated once per checkpoint (:mod:`pusa.speed.magcache`),
                stays under the threshold.

Both work with per-frame timesteps: they look at the blocks' hidden states, never at the timestep.
The caches keep state per guidance branch (``cache_context("cond"/"uncond")``, set by
``WanVelocity``) and are reset at the start of every request. A forward counts as skipped when the
DiT's last block did not run (``pusa.speed.modulation.block_runs``).
"""

from __future__ import annotations

import torch

from pusa.errors import InputError

from pusa.speed.magcache import DEFAULT_THRESHOLD as MAGCACHE_THRESHOLD
from pusa.speed.magcache import enable_magcache
from pusa.speed.names import CACHE_MODES
DEFAULT_THRESHOLD = {"fbcache": 0.05, "magcache": MAGCACHE_THRESHOLD}
TAYLORSEER_INTERVAL = 3  # full forward every 3rd step after the warm-up
TAYLORSEER_WARMUP = 3


def check_cache(mode: str, threshold: float | None) -> tuple[str, float | None]:
    """The cache mode and its threshold (the mode's default when not given)."""
    if mode not in CACHE_MODES:
        raise InputError(f"cache: {mode!r} is not allowed; expected one of {', '.join(CACHE_MODES)}")
    if threshold is not None:
        if mode not in DEFAULT_THRESHOLD:
            raise InputError(f"cache_threshold: only --cache {' or '.join(DEFAULT_THRESHOLD)} takes a threshold "
                             f"(cache is {mode!r})")
        if not 0.0 <= float(threshold) <= 1.0:
            raise InputError(f"cache_threshold: {threshold} is out of range; expected 0 to 1")
        return mode, float(threshold)
    return mode, DEFAULT_THRESHOLD.get(mode)


def enable_cache(dit: torch.nn.Module, mode: str, threshold: float | None,
                 mag_ratios: list[float] | None = None) -> None:
    """Attach the cache hooks to a loaded DiT (after the per-frame hooks, so they wrap them);
    ``mag_ratios``: this DiT's calibrated MagCache ratios."""
    if mode == "none":
        return
    if mode == "magcache":
        if mag_ratios is None:
            raise InputError("cache: magcache needs this model's calibrated ratios (pusa calibrate-magcache)")
        enable_magcache(dit, mag_ratios, float(threshold))
        return
    from diffusers.hooks import FirstBlockCacheConfig, TaylorSeerCacheConfig

    if mode == "fbcache":
        dit.enable_cache(FirstBlockCacheConfig(threshold=float(threshold)))
    else:
        dit.enable_cache(TaylorSeerCacheConfig(cache_interval=TAYLORSEER_INTERVAL,
                                               disable_cache_before_step=TAYLORSEER_WARMUP,
                                               taylor_factors_dtype=torch.float32,
                                               cache_identifiers=[r"blocks\.\d+"]))


def has_cache(dit: torch.nn.Module) -> bool:
    return bool(getattr(dit, "is_cache_enabled", False))


def reset_cache(dit: torch.nn.Module) -> None:
    """Forget the previous request's cached residuals and step counts."""
    if has_cache(dit):
        dit._reset_stateful_cache()
