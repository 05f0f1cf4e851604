"""What ``pusa serve --models-dir DIR`` offers: the model folders and Pusa LoRAs found in DIR.

Why a scan with ``pusa info``'s own detection (:func:`pusa.loading.layout.detect_layout`): the
picker must offer exactly the folders the engine can load, labelled the way ``pusa info`` names
them. What is looked at, one level deep only (a models dir is a shelf, not a tree to crawl):

- every folder of DIR: a model folder when its layout is recognised (Wan2.1 original, Wan2.2
  original, diffusers); else a Wan2.2 Pusa LoRA pair when it holds ``high_noise_pusa.safetensors``
  and ``low_noise_pusa.safetensors``; anything else is skipped (logged);
- LoRA files in DIR and in ``DIR/loras/``: ``.safetensors`` whose tensor names are LoRA weights
  (read from the header, no weights loaded) and ``.pt`` / ``.pth`` pickles (Pusa V1's
  ``pusa_v1.pt`` is one; a pickle is only read when chosen, and a pickle that is no LoRA fails
  that load, which leaves the previous model serving).

Clients pick by id (a name from this listing), never by path. An entry that is a symlink, or a
model whose components are symlinks, resolving outside DIR is refused: the listing cannot be
used to reach files the operator did not put there.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pusa.errors import PusaError
from pusa.loading.layout import ModelLayout, detect_layout

log = logging.getLogger(__name__)

LORA_SUBDIR = "loras"
PAIR_FILES = ("high_noise_pusa.safetensors", "low_noise_pusa.safetensors")
PICKLE_SUFFIXES = (".pt", ".pth")
# the tensor-name endings of every LoRA naming style the loader accepts (pusa.loading.lora)
_LORA_KEY_ENDS = (".lora_A.default.weight", ".lora_B.default.weight", ".lora_A.weight", ".lora_B.weight",
                  ".lora_down.weight", ".lora_up.weight", ".alpha", ".diff", ".diff_b")


@dataclass(frozen=True)
class ModelEntry:
    """One loadable model folder: ``id`` is its folder name, the only thing a client sends back."""

    id: str
    label: str
    family: str
    kind: str
    wan22: bool
    path: Path

    def public(self) -> dict[str, Any]:
        """JSON for clients: no server path."""
        return {"id": self.id, "label": self.label, "family": self.family, "kind": self.kind, "wan22": self.wan22}


@dataclass(frozen=True)
class LoraEntry:
    """One Pusa LoRA: a file (Wan2.1) or a folder with the high/low-noise pair (Wan2.2)."""

    id: str
    kind: str  # "file" or "wan2.2-pair"
    path: Path

    @property
    def for_wan22(self) -> bool:
        return self.kind == "wan2.2-pair"

    def public(self) -> dict[str, Any]:
        return {"id": self.id, "label": self.id, "kind": self.kind, "wan22": self.for_wan22}


@dataclass(frozen=True)
class ModelsListing:
    """Everything DIR offers, in name order."""

    models: tuple[ModelEntry, ...]
    loras: tuple[LoraEntry, ...]

    def model(self, model_id: str) -> ModelEntry | None:
        return next((m for m in self.models if m.id == model_id), None)

    def lora(self, lora_id: str) -> LoraEntry | None:
        return next((x for x in self.loras if x.id == lora_id), None)

    def loras_for(self, wan22: bool) -> list[LoraEntry]:
        """The LoRAs a model of this kind can take (a Wan2.2 model takes a pair, others a file)."""
        return [x for x in self.loras if x.for_wan22 == wan22]


def inside(path: Path, root: Path) -> bool:
    """True when ``path``, with every symlink resolved, lies inside ``root`` (itself resolved)."""
    try:
        return path.resolve().is_relative_to(root.resolve())
    except (OSError, RuntimeError):  # a symlink loop
        return False


def scan(root: Path) -> ModelsListing:
    """List DIR's model folders and LoRAs (see the module docstring); never raises for one bad entry."""
    root = Path(root).expanduser()
    models: list[ModelEntry] = []
    loras: list[LoraEntry] = []
    for entry in sorted(root.iterdir(), key=lambda p: p.name):
        if entry.name.startswith(".") or not inside(entry, root):
            if not entry.name.startswith("."):
                log.warning("models dir: %s points outside %s; skipped", entry.name, root)
            continue
        if entry.is_dir():
            model = _model_entry(entry, root)
            if model is not None:
                models.append(model)
            elif all((entry / name).is_file() and inside(entry / name, root) for name in PAIR_FILES):
                loras.append(LoraEntry(entry.name, "wan2.2-pair", entry))
        elif _is_lora_file(entry):
            loras.append(LoraEntry(entry.name, "file", entry))
    sub = root / LORA_SUBDIR
    if sub.is_dir() and inside(sub, root):
        for entry in sorted(sub.iterdir(), key=lambda p: p.name):
            if entry.is_dir() and not entry.name.startswith(".") and inside(entry, root) and all(
                    (entry / n).is_file() and inside(entry / n, root) for n in PAIR_FILES):
                loras.append(LoraEntry(f"{LORA_SUBDIR}/{entry.name}", "wan2.2-pair", entry))
            elif inside(entry, root) and _is_lora_file(entry):
                loras.append(LoraEntry(f"{LORA_SUBDIR}/{entry.name}", "file", entry))
    return ModelsListing(tuple(models), tuple(loras))


def describe(entry_id: str, layout: ModelLayout, path: Path) -> ModelEntry:
    """A listing entry from a detected layout (also used for the model the server started with)."""
    return ModelEntry(entry_id, layout.label or entry_id, layout.family.name, layout.kind, layout.is_wan22, path)


def _model_entry(folder: Path, root: Path) -> ModelEntry | None:
    try:
        layout = detect_layout(folder)
    except PusaError as e:
        log.debug("models dir: %s is not a model folder (%s)", folder.name, e)
        return None
    parts = [*layout.transformers, layout.vae, layout.text_encoder, layout.tokenizer]
    if not all(inside(p, root) for p in parts):
        log.warning("models dir: a component of %s points outside %s; skipped", folder.name, root)
        return None
    return describe(folder.name, layout, folder)


def _is_lora_file(path: Path) -> bool:
    """A pickle by its name; a safetensors file when every tensor name is a LoRA weight's (header only)."""
    if not path.is_file():
        return False
    if path.suffix in PICKLE_SUFFIXES:
        return True
    if path.suffix != ".safetensors":
        return False
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            keys = list(f.keys())
    except Exception as e:  # noqa: BLE001 - an unreadable file is simply not offered
        log.debug("models dir: %s is not a readable safetensors file (%s)", path.name, e)
        return False
    return bool(keys) and all(k.endswith(_LORA_KEY_ENDS) for k in keys)
