"""Recognise a model folder's layout and say where each component lives.

Supported: Wan2.1 original (sharded DiT + ``models_t5_umt5-xxl-enc-bf16.pth`` + ``Wan2.1_VAE.pth`` +
``google/umt5-xxl/``), the diffusers layout (``model_index.json``), and Wan2.2-T2V-A14B
(``high_noise_model/`` + ``low_noise_model/``; or diffusers ``transformer`` + ``transformer_2``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from pusa.errors import ModelInputError, ModelLoadError
from pusa.family import WAN22_BOUNDARY, ModelFamily, family_from_configs

T5_FILE = "models_t5_umt5-xxl-enc-bf16.pth"
VAE_FILE = "Wan2.1_VAE.pth"
TOKENIZER_DIR = "google/umt5-xxl"


@dataclass
class ModelLayout:
    """Where the components of one model folder are, and what kind of folder it is."""

    root: Path
    kind: str  # "wan2.1-original", "wan2.2-original", "diffusers"
    transformers: list[Path]  # one DiT, or [high-noise, low-noise] for Wan2.2
    vae: Path
    text_encoder: Path
    tokenizer: Path
    family: ModelFamily = field(default_factory=ModelFamily)
    default_lora: Path | None = None
    label: str = ""
    # pusa.json "fast_decode": decode a small VAE through oneDNN on the CPU (within one uint8 level of
    # the exact decode; pusa.latent_codec); set for the bundled model, whose decode was most of a clip's time
    fast_decode: bool = False

    @property
    def is_wan22(self) -> bool:
        return self.family.is_wan22

    def describe(self) -> list[tuple[str, str]]:
        """Component -> path pairs, for ``pusa info``."""
        rows = [("layout", self.kind)]
        names = ["transformer"] if not self.is_wan22 else ["transformer (high noise)", "transformer (low noise)"]
        rows += [(n, str(p)) for n, p in zip(names, self.transformers)]
        rows += [("vae", str(self.vae)), ("text encoder", str(self.text_encoder)), ("tokenizer", str(self.tokenizer))]
        if self.family.boundary is not None:
            rows.append(("expert boundary", f"{self.family.boundary} x 1000 timesteps"))
        rows.append(("family", self.family.describe()))
        if self.default_lora:
            rows.append(("default LoRA", str(self.default_lora)))
        return rows


def _require(path: Path, what: str) -> Path:
    if not path.exists():
        raise ModelLoadError(f"{what} not found: {path}")
    return path


def _pusa_meta(root: Path) -> dict:
    meta_path = root / "pusa.json"
    try:
        return json.loads(meta_path.read_text()) if meta_path.is_file() else {}
    except (OSError, ValueError) as e:
        raise ModelLoadError(f"{meta_path} is not valid JSON ({e})") from None


def _json(path: Path) -> dict:
    try:
        return json.loads(path.read_text()) if path.is_file() else {}
    except (OSError, ValueError) as e:
        raise ModelLoadError(f"{path} is not valid JSON ({e})") from None


def _original_dit_as_diffusers(cfg: dict) -> dict:
    """The few DiT facts the family needs, from an original Wan ``config.json`` (diffusers names)."""
    out: dict = {"patch_size": cfg.get("patch_size", (1, 2, 2))}
    if cfg.get("in_dim"):
        out["in_channels"] = int(cfg["in_dim"])
    if cfg.get("num_heads"):
        out["num_attention_heads"] = int(cfg["num_heads"])
    return out


def detect_layout(root: str | Path) -> ModelLayout:
    """Inspect ``root`` and return its layout and model family (from configs, no weights read),
    or raise ``ModelLoadError`` saying what is missing."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise ModelInputError(f"model: model folder not found: {root}")
    meta = _pusa_meta(root)
    fast = meta.get("fast_decode", False)
    if not isinstance(fast, bool):
        raise ModelLoadError(f"{root / 'pusa.json'}: fast_decode is {fast!r}; expected true or false")
    layout = _detect(root, meta)
    layout.fast_decode = fast
    return layout


def _detect(root: Path, meta: dict) -> ModelLayout:
    lora = root / meta["lora"] if meta.get("lora") else None
    label = str(meta.get("label", root.name))
    text_len = int(meta.get("text_len", 512))

    if (root / "model_index.json").is_file():
        index = _json(root / "model_index.json")
        transformers = [_require(root / "transformer", "transformer folder")]
        boundary = None
        if index.get("transformer_2") and index["transformer_2"][0] is not None:
            transformers.append(_require(root / "transformer_2", "transformer_2 folder"))
            boundary = float(index.get("boundary_ratio") or WAN22_BOUNDARY)
        vae = _require(root / "vae", "vae folder")
        family = family_from_configs(_json(vae / "config.json"), _json(transformers[0] / "config.json"),
                                     experts=len(transformers), boundary=boundary, meta=meta, text_len=text_len)
        return ModelLayout(root, "diffusers", transformers, vae, _require(root / "text_encoder", "text_encoder folder"),
                           _require(root / "tokenizer", "tokenizer folder"), family, lora, label)

    if (root / "high_noise_model").is_dir() or (root / "low_noise_model").is_dir():
        high = _require(root / "high_noise_model", "Wan2.2 high_noise_model folder")
        low = _require(root / "low_noise_model", "Wan2.2 low_noise_model folder")
        cfg = _original_config(high)
        family = family_from_configs({}, _original_dit_as_diffusers(cfg), experts=2,
                                     boundary=float(cfg.get("boundary", WAN22_BOUNDARY)), meta=meta,
                                     text_len=int(cfg.get("text_len", text_len)))
        return ModelLayout(root, "wan2.2-original", [high, low], _require(root / VAE_FILE, "Wan VAE"),
                           _require(root / T5_FILE, "UMT5 encoder"), _require(root / TOKENIZER_DIR, "tokenizer folder"),
                           family, lora, label)

    if list(root.glob("diffusion_pytorch_model*.safetensors")) or (root / "config.json").is_file():
        cfg = _original_config(root)
        family = family_from_configs({}, _original_dit_as_diffusers(cfg), meta=meta,
                                     text_len=int(cfg.get("text_len", text_len)))
        return ModelLayout(root, "wan2.1-original", [root], _require(root / VAE_FILE, "Wan VAE"),
                           _require(root / T5_FILE, "UMT5 encoder"), _require(root / TOKENIZER_DIR, "tokenizer folder"),
                           family, lora, label)

    raise ModelInputError(
        f"model: {root} is not a recognised model folder: expected model_index.json (diffusers layout), "
        f"diffusion_pytorch_model*.safetensors + config.json (Wan2.1 original) or high_noise_model/ + "
        f"low_noise_model/ (Wan2.2)")


def _original_config(folder: Path) -> dict:
    return _json(folder / "config.json")
