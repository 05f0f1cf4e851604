"""Recognise a model folder's layout and say where each component lives.

Supported: Wan2.1 original (sharded DiT + ``models_t5_umt5-xxl-enc-bf16.pth`` + ``Wan2.1_VAE.pth`` +
``google/umt5-xxl/``), the diffusers layout (``model_index.json``), and Wan2.2-T2V-A14B
(``high_noise_model/`` + ``low_noise_model/``; or diffusers ``transformer`` + ``transformer_2``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from pusa.errors import ModelLoadError
from pusa.settings import ModelDefaults

T5_FILE = "models_t5_umt5-xxl-enc-bf16.pth"
VAE_FILE = "Wan2.1_VAE.pth"
TOKENIZER_DIR = "google/umt5-xxl"
WAN22_BOUNDARY = 0.875


@dataclass
class ModelLayout:
    """Where the components of one model folder are, and what kind of folder it is."""

    root: Path
    kind: str  # "wan2.1-original", "wan2.2-original", "diffusers"
    transformers: list[Path]  # one DiT, or [high-noise, low-noise] for Wan2.2
    vae: Path
    text_encoder: Path
    tokenizer: Path
    boundary: float | None = None
    text_len: int = 512
    defaults: ModelDefaults = field(default_factory=ModelDefaults)
    default_lora: Path | None = None
    label: str = ""

    @property
    def is_wan22(self) -> bool:
        return len(self.transformers) == 2

    def describe(self) -> list[tuple[str, str]]:
        """Component -> path pairs, for ``pusa info``."""
        rows = [("layout", self.kind)]
        names = ["transformer"] if not self.is_wan22 else ["transformer (high noise)", "transformer (low noise)"]
        rows += [(n, str(p)) for n, p in zip(names, self.transformers)]
        rows += [("vae", str(self.vae)), ("text encoder", str(self.text_encoder)), ("tokenizer", str(self.tokenizer))]
        if self.boundary is not None:
            rows.append(("expert boundary", f"{self.boundary} x 1000 timesteps"))
        rows.append(("defaults", f"{self.defaults.width}x{self.defaults.height}, {self.defaults.frames} frames"))
        if self.default_lora:
            rows.append(("default LoRA", str(self.default_lora)))
        return rows


def _require(path: Path, what: str) -> Path:
    if not path.exists():
        raise ModelLoadError(f"{what} not found: {path}")
    return path


def _pusa_meta(root: Path) -> tuple[ModelDefaults, Path | None, str, dict]:
    meta_path = root / "pusa.json"
    meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
    base = ModelDefaults()
    defaults = ModelDefaults(width=int(meta.get("width", base.width)), height=int(meta.get("height", base.height)),
                             frames=int(meta.get("frames", base.frames)))
    lora = root / meta["lora"] if meta.get("lora") else None
    return defaults, lora, str(meta.get("label", root.name)), meta


def detect_layout(root: str | Path) -> ModelLayout:
    """Inspect ``root`` and return its layout, or raise ``ModelLoadError`` saying what is missing."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise ModelLoadError(f"model folder not found: {root}")
    defaults, lora, label, meta = _pusa_meta(root)
    text_len = int(meta.get("text_len", 512))

    if (root / "model_index.json").is_file():
        index = json.loads((root / "model_index.json").read_text())
        transformers = [_require(root / "transformer", "transformer folder")]
        boundary = None
        if index.get("transformer_2") and index["transformer_2"][0] is not None:
            transformers.append(_require(root / "transformer_2", "transformer_2 folder"))
            boundary = float(index.get("boundary_ratio") or WAN22_BOUNDARY)
        return ModelLayout(root, "diffusers", transformers, _require(root / "vae", "vae folder"),
                           _require(root / "text_encoder", "text_encoder folder"),
                           _require(root / "tokenizer", "tokenizer folder"), boundary, text_len, defaults, lora,
                           label)

    if (root / "high_noise_model").is_dir() or (root / "low_noise_model").is_dir():
        high = _require(root / "high_noise_model", "Wan2.2 high_noise_model folder")
        low = _require(root / "low_noise_model", "Wan2.2 low_noise_model folder")
        cfg = _original_config(high)
        return ModelLayout(root, "wan2.2-original", [high, low], _require(root / VAE_FILE, "Wan VAE"),
                           _require(root / T5_FILE, "UMT5 encoder"), _require(root / TOKENIZER_DIR, "tokenizer folder"),
                           float(cfg.get("boundary", WAN22_BOUNDARY)), int(cfg.get("text_len", text_len)), defaults,
                           lora, label)

    if list(root.glob("diffusion_pytorch_model*.safetensors")) or (root / "config.json").is_file():
        cfg = _original_config(root)
        return ModelLayout(root, "wan2.1-original", [root], _require(root / VAE_FILE, "Wan VAE"),
                           _require(root / T5_FILE, "UMT5 encoder"), _require(root / TOKENIZER_DIR, "tokenizer folder"),
                           None, int(cfg.get("text_len", text_len)), defaults, lora, label)

    raise ModelLoadError(
        f"{root} is not a recognised model folder: expected model_index.json (diffusers layout), "
        f"diffusion_pytorch_model*.safetensors + config.json (Wan2.1 original) or high_noise_model/ + "
        f"low_noise_model/ (Wan2.2)")


def _original_config(folder: Path) -> dict:
    path = folder / "config.json"
    return json.loads(path.read_text()) if path.is_file() else {}
