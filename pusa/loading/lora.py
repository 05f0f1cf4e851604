"""LoRA files in every naming style, and merging them into the DiT so that alpha is per request.

Why merge instead of keeping PEFT adapters live: an unmerged rank-512 LoRA on a 14B DiT costs
about 17% more compute per step. Why keep the original weights: the original demo merged again
on top of already merged weights, so the effect piled up across requests. Here every merge starts
from the untouched base weights with the same arithmetic, so any sequence of alphas gives
bit-for-bit the weights a fresh process would have.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from pusa.errors import InputError, LoraMismatchError, ModelInputError, ModelLoadError

log = logging.getLogger(__name__)

_PREFIXES = ("base_model.model.", "model.diffusion_model.", "diffusion_model.", "transformer.", "module.",
             "model.")
_SUFFIXES = (
    (".lora_A.default.weight", "A"), (".lora_B.default.weight", "B"),
    (".lora_A.weight", "A"), (".lora_B.weight", "B"),
    (".lora_down.weight", "A"), (".lora_up.weight", "B"),
    (".alpha", "alpha"), (".diff_b", "diff_b"), (".diff", "diff"),
)
# Pusa's LoRA targets in diffusers naming: self/cross attention q, k, v, o and the two FFN linears.
PUSA_TARGETS = ("attn1.to_q", "attn1.to_k", "attn1.to_v", "attn1.to_out.0",
                "attn2.to_q", "attn2.to_k", "attn2.to_v", "attn2.to_out.0",
                "ffn.net.0.proj", "ffn.net.2")
_DIFFUSERS_HINT = re.compile(r"(attn[12]\.|to_[qkvo]|to_out|ffn\.net|proj_out|condition_embedder|scale_shift_table)")


@dataclass
class LoraModule:
    """The low-rank update of one module: ``delta W = scale * B @ A`` plus optional full deltas."""

    A: torch.Tensor | None = None
    B: torch.Tensor | None = None
    alpha: float | None = None
    diff: torch.Tensor | None = None
    diff_b: torch.Tensor | None = None

    @property
    def scale(self) -> float:
        """The file's own scale: ``alpha / rank`` for kohya-style files, 1 for PEFT/Pusa files."""
        if self.alpha is None or self.A is None:
            return 1.0
        return float(self.alpha) / self.A.shape[0]


@dataclass
class LoraWeights:
    """A parsed LoRA file: module name (diffusers naming) -> update."""

    path: str
    modules: dict[str, LoraModule] = field(default_factory=dict)

    @property
    def rank(self) -> int:
        ranks = {m.A.shape[0] for m in self.modules.values() if m.A is not None}
        return max(ranks) if ranks else 0


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read ``.safetensors`` or a torch pickle (never executing code), unwrapping nested dicts."""
    path = Path(path)
    if not path.is_file():
        raise ModelInputError(f"LoRA file not found: {path}")
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except (SafetensorError, OSError, ValueError) as e:
            raise ModelInputError(f"LoRA {path.name} is not a readable safetensors file ({e})") from None
    from pusa.loading.components import torch_load_tensors

    try:
        obj = torch_load_tensors(path)
    except ModelLoadError as e:
        raise ModelInputError(f"LoRA {e}") from None
    return _unwrap(obj, path)


def _unwrap(obj: object, path: Path) -> dict[str, torch.Tensor]:
    for _ in range(4):
        if isinstance(obj, dict) and obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
            return dict(obj)
        if isinstance(obj, dict):
            nested = [v for v in obj.values() if isinstance(v, dict)]
            tensors = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
            if tensors and not nested:
                return tensors
            if len(nested) >= 1:
                for key in ("state_dict", "lora", "model", "module", "params"):
                    if isinstance(obj.get(key), dict):
                        obj = obj[key]
                        break
                else:
                    obj = nested[0]
                continue
        break
    raise ModelInputError(f"LoRA {path.name} holds no tensors in a recognised layout")


def _module_name(raw: str) -> str:
    name = raw
    changed = True
    while changed:
        changed = False
        for p in _PREFIXES:
            if name.startswith(p):
                name = name[len(p):]
                changed = True
    if _DIFFUSERS_HINT.search(name):
        return name
    from diffusers.loaders.single_file_utils import convert_wan_transformer_to_diffusers

    converted = convert_wan_transformer_to_diffusers({name + ".weight": 0})
    return next(iter(converted)).removesuffix(".weight")


def parse_lora(state: dict[str, torch.Tensor], path: str = "<memory>") -> LoraWeights:
    """Group a LoRA state dict by target module, whatever its naming style."""
    out = LoraWeights(path=path)
    unknown = []
    for key, value in state.items():
        for suffix, kind in _SUFFIXES:
            if key.endswith(suffix):
                module = _module_name(key[: -len(suffix)])
                entry = out.modules.setdefault(module, LoraModule())
                if kind == "alpha":
                    entry.alpha = float(value.float().item())
                else:
                    setattr(entry, kind, value)
                break
        else:
            unknown.append(key)
    if unknown:
        raise ModelLoadError(f"{path}: {len(unknown)} keys are not LoRA weights (e.g. {unknown[0]!r}); expected "
                             f"names ending in .lora_A/.lora_B(.default).weight or .lora_down/.lora_up.weight")
    half = [m for m, e in out.modules.items() if (e.A is None) != (e.B is None)]
    if half:
        raise ModelLoadError(f"{path}: module {half[0]!r} has only one of its two LoRA matrices")
    if not out.modules:
        raise ModelLoadError(f"{path} contains no LoRA weights")
    return out


def load_lora(path: str | Path) -> LoraWeights:
    """Read and parse a LoRA file (``pusa_v1.pt``, ``.safetensors``; PEFT, original or diffusers names)."""
    return parse_lora(read_state_dict(path), str(path))


def check_lora_fits(model: nn.Module, lora: LoraWeights) -> None:
    """Raise unless every LoRA module exists in ``model`` with fitting shapes."""
    modules = dict(model.named_modules())
    missing = [m for m in lora.modules if m not in modules]
    if missing:
        matched = len(lora.modules) - len(missing)
        raise LoraMismatchError(
            f"{lora.path}: {matched} of {len(lora.modules)} LoRA modules match the model; e.g. {missing[0]!r} "
            f"is not a module of it (is this LoRA for another model?)")
    for name, entry in lora.modules.items():
        mod = modules[name]
        weight = getattr(mod, "weight", None)
        if entry.A is not None:
            if not isinstance(mod, nn.Linear):
                raise LoraMismatchError(f"{lora.path}: {name} is a {type(mod).__name__}, not a Linear layer")
            want_a = (entry.A.shape[0], mod.in_features)
            want_b = (mod.out_features, entry.B.shape[1])
            if tuple(entry.A.shape) != want_a or tuple(entry.B.shape) != want_b:
                raise LoraMismatchError(
                    f"{lora.path}: {name} LoRA shapes A{tuple(entry.A.shape)} B{tuple(entry.B.shape)} do not fit "
                    f"the layer ({mod.in_features} -> {mod.out_features})")
        if entry.diff is not None and (weight is None or entry.diff.shape != weight.shape):
            raise LoraMismatchError(f"{lora.path}: {name}.diff has shape {tuple(entry.diff.shape)}, the weight is "
                                    f"{tuple(weight.shape) if weight is not None else None}")
        bias = getattr(mod, "bias", None)
        if entry.diff_b is not None and (bias is None or entry.diff_b.shape != bias.shape):
            raise LoraMismatchError(f"{lora.path}: {name}.diff_b does not fit the layer's bias")


class MergedLoras:
    """Keeps LoRAs merged into a model at the requested scales, always re-merging from originals."""

    def __init__(self, model: nn.Module, loras: list[LoraWeights], compute_device: torch.device | str | None = None,
                 source: Callable[[str, str], torch.Tensor] | None = None):
        """``source(module, param)`` returns an original weight as loaded (``pusa.speed.restore``: the
        checkpoint's memory-mapped file); a weight it returns bit-identically is not copied to host RAM."""
        for lora in loras:
            check_lora_fits(model, lora)
        self.model = model
        self.loras = loras
        self.compute_device = torch.device(compute_device) if compute_device else None
        self.scales: tuple[float, ...] = tuple(0.0 for _ in loras)
        self.last_merge_seconds = 0.0
        modules = dict(model.named_modules())
        self._targets: dict[str, nn.Module] = {}
        self._originals: dict[tuple[str, str], torch.Tensor] = {}
        self._source = source
        self._from_source: set[tuple[str, str]] = set()
        for lora in loras:
            for name, entry in lora.modules.items():
                mod = modules[name]
                self._targets[name] = mod
                for pname in ("weight",) + (("bias",) if entry.diff_b is not None else ()):
                    key = (name, pname)
                    if key in self._originals or key in self._from_source:
                        continue
                    current = getattr(mod, pname).detach()
                    if source is not None and _same(source, name, pname, current):
                        self._from_source.add(key)
                    else:
                        self._originals[key] = current.to("cpu", copy=True)

    @property
    def host_copy_bytes(self) -> int:
        """Bytes of original weights held in host RAM (0 when all are read back from the checkpoint)."""
        return sum(t.numel() * t.element_size() for t in self._originals.values())

    def _original(self, name: str, pname: str) -> torch.Tensor:
        key = (name, pname)
        return self._originals[key] if key in self._originals else self._source(name, pname)

    def set_scales(self, scales: list[float] | tuple[float, ...]) -> bool:
        """Merge every LoRA at its scale; returns False (and does nothing) if already at those scales."""
        scales = tuple(float(s) for s in scales)
        if len(scales) != len(self.loras):
            raise ValueError(f"expected {len(self.loras)} scales, got {len(scales)}")
        if scales == self.scales:
            return False
        start = time.perf_counter()
        for name, mod in self._targets.items():
            self._merge_module(name, mod, scales)
        self.scales = scales
        self.last_merge_seconds = time.perf_counter() - start
        log.info("merged %d LoRA(s) at scales %s in %.2fs", len(self.loras), scales, self.last_merge_seconds)
        return True

    @torch.no_grad()
    def _merge_module(self, name: str, mod: nn.Module, scales: tuple[float, ...]) -> None:
        weight = mod.weight
        device = self.compute_device or weight.device
        w = self._original(name, "weight").to(device, torch.float32, copy=True)
        b = None
        if (name, "bias") in self._originals or (name, "bias") in self._from_source:
            b = self._original(name, "bias").to(device, torch.float32, copy=True)
        for lora, scale in zip(self.loras, scales):
            entry = lora.modules.get(name)
            if entry is None or scale == 0.0:
                continue
            if entry.A is not None:
                a_m = entry.A.to(device, torch.float32)
                b_m = entry.B.to(device, torch.float32)
                w.addmm_(b_m, a_m, alpha=scale * entry.scale)
            if entry.diff is not None:
                w.add_(entry.diff.to(device, torch.float32), alpha=scale)
            if entry.diff_b is not None and b is not None:
                b.add_(entry.diff_b.to(device, torch.float32), alpha=scale)
        weight.data.copy_(w.to(weight.dtype))
        if b is not None:
            mod.bias.data.copy_(b.to(mod.bias.dtype))


def _same(source, name: str, pname: str, current: torch.Tensor) -> bool:
    """Whether ``source`` holds exactly the loaded weight (then it need not be copied)."""
    try:
        original = source(name, pname)
    except KeyError:
        return False
    return original.dtype == current.dtype and torch.equal(original, current.cpu())


def lora_files_per_expert(layout, lora, lora_low, extra, extra_low, use_default: bool) -> list[list[Path]]:
    """LoRA files per expert, checked to exist before any weight loads: ``[[pusa, extra?]]`` for one
    DiT, ``[[high...], [low...]]`` for Wan2.2 (``lora`` may be a folder with both Pusa files)."""
    if lora is None and use_default and layout.default_lora is not None:
        lora = layout.default_lora
    lora = Path(lora).expanduser() if lora is not None else None
    if not layout.is_wan22:
        for name, p in (("lora_low", lora_low), ("extra_lora_low", extra_low)):
            if p is not None:
                raise InputError(f"{name}: only a Wan2.2 (high/low noise) model takes a second LoRA per expert")
        files = [p for p in (lora, Path(extra).expanduser() if extra else None) if p is not None]
        for f in files:
            if not f.is_file():
                raise ModelInputError(f"LoRA file not found: {f}")
        return [files]
    high = lora
    low = Path(lora_low).expanduser() if lora_low else None
    if high is not None and high.is_dir():
        folder = high
        high, low = folder / "high_noise_pusa.safetensors", low or folder / "low_noise_pusa.safetensors"
    if (high is None) != (low is None):
        raise InputError("lora_low: a Wan2.2 model needs both LoRAs (high and low noise) or neither")
    out: list[list[Path]] = [[], []]
    for i, (main, ext) in enumerate(((high, extra), (low, extra_low))):
        for p in (main, Path(ext).expanduser() if ext else None):
            if p is None:
                continue
            if not p.is_file():
                raise ModelInputError(f"LoRA file not found: {p}")
            out[i].append(p)
    return out
