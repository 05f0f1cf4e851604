"""The speed options on the command line (``pusa generate``, ``pusa serve``, ``pusa eval``).

Kept free of torch and diffusers imports so building a parser stays instant; the choices are the
same tuples the engine checks (``pusa.speed.names``).
"""

from __future__ import annotations

import argparse
from typing import Any

from pusa.speed.names import ATTENTION_MODES, CACHE_MODES, MODULATION_MODES, PRESET_NAMES, WEIGHT_MODES


def add_speed_options(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("speed and memory")
    g.add_argument("--modulation", default="per_frame", choices=MODULATION_MODES,
                   help="per_frame (default): time embedding and modulation once per latent frame, same output, "
                        "~6.5 GiB less at 480p; per_token: diffusers' own path")
    g.add_argument("--weights", default="bf16", choices=WEIGHT_MODES,
                   help="bf16 (default): the DiT in --dtype; fp8: float8 storage, half the DiT memory, computed in "
                        "--dtype")
    g.add_argument("--cache", default="none", choices=CACHE_MODES,
                   help="step cache: fbcache (skip the blocks when the first block barely changed) or taylorseer "
                        "(predict block outputs between refresh steps); the sidecar counts skipped forwards")
    g.add_argument("--cache-threshold", type=float, metavar="T",
                   help="fbcache: relative change below which a forward is skipped (default 0.05; higher skips more)")
    g.add_argument("--attention", default="auto", choices=ATTENTION_MODES,
                   help="attention kernel via diffusers (flash/flash3/sage need their packages; default auto = SDPA)")
    g.add_argument("--compile", action="store_true", help="torch.compile the repeated DiT block (slow first step)")
    g.add_argument("--preset", default="none", choices=PRESET_NAMES,
                   help="lightx2v: 4 steps, cfg 1, shift 5 with the distillation LoRA given as --extra-lora "
                        "(and --extra-lora-low for Wan2.2)")


def speed_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """``PusaPipeline.from_pretrained`` keywords of the speed options (defaults where a parser lacks them)."""
    return dict(modulation=getattr(args, "modulation", "per_frame"), weights=getattr(args, "weights", "bf16"),
                cache=getattr(args, "cache", "none"), cache_threshold=getattr(args, "cache_threshold", None),
                attention=getattr(args, "attention", "auto"), compile=bool(getattr(args, "compile", False)),
                preset=getattr(args, "preset", "none"))
