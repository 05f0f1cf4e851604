"""Original DiT weights read back from the checkpoint's memory-mapped safetensors, not kept in RAM.

An alpha change re-merges every LoRA target from its original weight. Keeping those originals in
host RAM costs about 28 GB for the 14B DiT; they are already on disk, and safetensors reads one
tensor at a time through a memory map. ``CheckpointSource`` maps each diffusers parameter name to
its shard and key (original Wan names are converted with diffusers' own key converter) and returns
the tensor cast exactly as the loader cast it (``tensor.to(dtype)``), so a re-merge from it is
bit-identical to one from a host copy. ``MergedLoras`` checks every target against the loaded model
once and keeps a host copy only where the file disagrees (none, for an unmodified checkpoint).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

STEM = "diffusion_pytorch_model"


def _shards(folder: Path) -> dict[str, Path]:
    """Key in the files -> the safetensors shard holding it (no tensor is read)."""
    from safetensors import safe_open

    index = folder / f"{STEM}.safetensors.index.json"
    if index.is_file():
        weight_map = json.loads(index.read_text()).get("weight_map", {})
        return {k: folder / shard for k, shard in weight_map.items()}
    single = folder / f"{STEM}.safetensors"
    if not single.is_file():
        return {}
    with safe_open(str(single), framework="pt") as f:
        return {k: single for k in f.keys()}


class CheckpointSource:
    """``source(module_name, "weight" | "bias") -> tensor`` for the DiT loaded from ``folder``."""

    def __init__(self, folder: str | Path, original: bool, dtype: torch.dtype):
        self.folder = Path(folder)
        self.dtype = dtype
        files = _shards(self.folder)
        if original and files:
            from diffusers.loaders.single_file_utils import convert_wan_transformer_to_diffusers

            renamed = convert_wan_transformer_to_diffusers({k: k for k in files})  # a renaming only
            self._where = {name: (files[key], key) for name, key in renamed.items() if key in files}
        else:
            self._where = {k: (path, k) for k, path in files.items()}

    def __contains__(self, name: str) -> bool:
        return name in self._where

    def __call__(self, module: str, param: str) -> torch.Tensor:
        from safetensors import safe_open

        path, key = self._where[f"{module}.{param}"]
        with safe_open(str(path), framework="pt", device="cpu") as f:
            return f.get_tensor(key).to(self.dtype)


def checkpoint_source(folder: str | Path, original: bool, dtype: torch.dtype) -> CheckpointSource | None:
    """The source for a DiT folder, or None where its weights are not in safetensors files."""
    source = CheckpointSource(folder, original, dtype)
    return source if source._where else None
