"""MagCache for Pusa's models: magnitude ratios calibrated per checkpoint, then diffusers' hooks.

Why a calibration step: MagCache skips a DiT forward when the accumulated change in the magnitude of
the blocks' residual (output of the last block minus input of the first) since the last full
forward is small. How fast that magnitude changes from step to step is a property of the
checkpoint and the sigma schedule, so it is measured once on the user's own model
(:func:`calibrate`, ``pusa calibrate-magcache``) and kept beside the weights in
``magcache.json``. Pusa's vectorized timesteps do not disturb it: the ratios look only at the
residuals, never at the timestep.

Each expert of Wan2.2 has its own ratios (it runs only its share of the steps), and a request with
another step count than the calibration's gets them interpolated (diffusers' ``nearest_interp``)
to the number of steps that expert runs in that request (:func:`plan_steps`). The two guidance
branches keep separate accumulators (``cache_context``); their ratios are measured separately and
averaged, as they differ by about a percent.
"""

from __future__ import annotations

import json
import math
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import torch

from pusa.atomic import atomic_file
from pusa.errors import InputError

RATIOS_FILE = "magcache.json"
DEFAULT_THRESHOLD = 0.12  # MagCache's Wan2.1 setting
MAX_SKIP_STEPS = 2  # at most two forwards in a row answered from the cache
RETENTION_RATIO = 0.2  # the first fifth of the steps always run (they set the layout)
_CONFIG_ATTR = "_pusa_magcache"


def ratios_path(model_dir: str | Path) -> Path:
    return Path(model_dir) / RATIOS_FILE


def load_ratios(model_dir: str | Path, experts: int) -> list[list[float]]:
    """The calibrated ratios of each expert; a clear refusal (exit 2) when there are none or they do not fit."""
    path = ratios_path(model_dir)
    hint = f"run `pusa calibrate-magcache --model {model_dir}` once to write {RATIOS_FILE} beside the weights"
    if not path.is_file():
        raise InputError(f"cache: magcache needs magnitude ratios calibrated for this model and none were found; "
                         f"{hint}")
    try:
        data = json.loads(path.read_text())
        ratios = [[float(r) for r in expert] for expert in data["experts"]]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise InputError(f"cache: {RATIOS_FILE} of this model is unreadable ({type(e).__name__}); {hint}") from None
    if len(ratios) != experts or any(not r or not all(math.isfinite(v) and v > 0 for v in r) for r in ratios):
        raise InputError(f"cache: {RATIOS_FILE} holds ratios for {len(ratios)} expert(s), this model has {experts}, "
                         f"or a ratio is not a positive number; {hint}")
    return ratios


def write_ratios(path: str | Path, ratios: list[list[float]], settings: dict[str, Any]) -> Path:
    """Write the calibration (with the request it was measured on, for the record) atomically."""
    body = {"experts": [[round(r, 6) for r in expert] for expert in ratios], "calibrated_with": settings}
    with atomic_file(path) as tmp:
        tmp.write_text(json.dumps(body, indent=2) + "\n")
    return Path(path)


def enable_magcache(dit: torch.nn.Module, ratios: list[float], threshold: float) -> None:
    """diffusers' MagCache hooks on one DiT, with a config :func:`plan_steps` adapts per request."""
    from diffusers.hooks import MagCacheConfig

    config = MagCacheConfig(threshold=threshold, max_skip_steps=MAX_SKIP_STEPS, retention_ratio=RETENTION_RATIO,
                            num_inference_steps=len(ratios), mag_ratios=list(ratios))
    dit.enable_cache(config)
    setattr(dit, _CONFIG_ATTR, (config, torch.tensor(ratios, dtype=torch.float32)))


def plan_steps(dit: torch.nn.Module, steps: int) -> None:
    """Tell a MagCache'd DiT how many forwards per branch it runs in this request (no-op otherwise)."""
    held = getattr(dit, _CONFIG_ATTR, None)
    if held is None or steps < 1:
        return
    from diffusers.hooks.mag_cache import nearest_interp

    config, base = held
    config.num_inference_steps = steps
    config.mag_ratios = base if len(base) == steps else nearest_interp(base, steps)


class _Recorder:
    """Residual magnitudes of every full forward of one DiT, per guidance branch."""

    def __init__(self, dit: torch.nn.Module):
        self.norms: dict[int, list[torch.Tensor]] = {}
        self._branch: int | None = None
        self._input: torch.Tensor | None = None
        self._handles = [
            dit.register_forward_pre_hook(self._on_dit, with_kwargs=True),
            dit.blocks[0].register_forward_pre_hook(self._on_first, with_kwargs=True),
            dit.blocks[-1].register_forward_hook(self._on_last, with_kwargs=True),
        ]

    def _on_dit(self, module: Any, args: tuple, kwargs: dict) -> None:
        context = kwargs.get("encoder_hidden_states")
        self._branch = context.data_ptr() if context is not None else 0

    def _on_first(self, module: Any, args: tuple, kwargs: dict) -> None:
        hidden = args[0] if args else kwargs["hidden_states"]
        self._input = hidden.detach().float()

    def _on_last(self, module: Any, args: tuple, kwargs: dict, output: Any) -> None:
        out = output[0] if isinstance(output, tuple) else output
        residual = out.detach().float() - self._input
        self.norms.setdefault(self._branch or 0, []).append(torch.linalg.norm(residual, dim=-1).cpu())

    def ratios(self) -> list[float]:
        """Per step: the mean over tokens of |r_k| / |r_{k-1}| (1.0 at the first step), branches averaged."""
        per_branch = []
        for norms in self.norms.values():
            seq = [1.0] + [float((cur / (prev + 1e-8)).mean()) for prev, cur in zip(norms, norms[1:])]
            per_branch.append(seq)
        if not per_branch:
            return []
        length = min(len(s) for s in per_branch)
        return [sum(s[k] for s in per_branch) / len(per_branch) for k in range(length)]

    def close(self) -> None:
        for h in self._handles:
            h.remove()


@contextmanager
def recording(transformers: list[torch.nn.Module]) -> Iterator[list[_Recorder]]:
    """Record the residual magnitudes of every DiT while a request runs (no cache may be enabled)."""
    for dit in transformers:
        if getattr(dit, "is_cache_enabled", False):
            raise InputError("cache: calibrate MagCache on a model loaded without a step cache (--cache none)")
    recorders = [_Recorder(dit) for dit in transformers]
    try:
        yield recorders
    finally:
        for r in recorders:
            r.close()


def calibrate(pipe: Any, settings: Any) -> list[list[float]]:
    """Run one request on ``pipe`` and return the magnitude ratios of each expert.

    An expert that never ran (a Wan2.2 request whose steps all fall on one side of the boundary)
    has no ratios: that is an error, because its MagCache could not be planned.
    """
    with recording(pipe.transformers) as recorders:
        pipe.generate(settings)
    ratios = [r.ratios() for r in recorders]
    for i, r in enumerate(ratios):
        if len(r) < 2:
            raise InputError(f"steps: expert {i + 1} ran {len(r)} step(s) during calibration; give more steps "
                             f"(--steps) so that every expert runs at least two")
    return ratios
