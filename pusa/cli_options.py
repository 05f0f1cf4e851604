"""Command-line options shared by every subcommand that loads the engine (generate, serve, eval)."""

from __future__ import annotations

import argparse
from typing import Any

from pusa.loading.devices import DTYPES, OFFLOAD_MODES


def add_engine_options(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("model and device")
    g.add_argument("--model", metavar="DIR", help="model folder (Wan2.1/Wan2.2, original or diffusers layout); "
                                                  "default: the bundled tiny model")
    g.add_argument("--lora", metavar="FILE", help="Pusa LoRA (pusa_v1.pt / .safetensors); for Wan2.2 the high-noise "
                                                  "file or a folder with high_/low_noise_pusa.safetensors")
    g.add_argument("--lora-low", metavar="FILE", help="Wan2.2: the low-noise Pusa LoRA")
    g.add_argument("--extra-lora", metavar="FILE", help="a second LoRA stacked on top (e.g. 4-step distillation)")
    g.add_argument("--extra-lora-low", metavar="FILE", help="Wan2.2: the second LoRA of the low-noise expert")
    g.add_argument("--no-default-lora", action="store_true", help="do not apply the model folder's default LoRA")
    g.add_argument("--device", default="auto", help="auto, cuda, cuda:N, mps or cpu (default: auto)")
    g.add_argument("--dtype", default="auto", choices=["auto", *DTYPES], help="DiT/T5 precision (default: auto = "
                                                                               "bf16 on GPU, fp32 on CPU)")
    g.add_argument("--offload", default="none", choices=OFFLOAD_MODES,
                   help="none (fastest), model (whole components to GPU in turn) or group (DiT streamed block by "
                        "block, least VRAM)")
    g.add_argument("--vae-tiling", action="store_true", help="decode in tiles (less VRAM at 720p)")
    g.add_argument("--text-encoder-cpu", action="store_true", help="keep the UMT5 encoder on the CPU (saves ~11 GB VRAM)")


def engine_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """``PusaPipeline.from_pretrained`` keyword arguments from parsed options (model resolved separately)."""
    return dict(lora=args.lora, lora_low=args.lora_low, extra_lora=args.extra_lora,
                extra_lora_low=args.extra_lora_low, use_default_lora=not args.no_default_lora, device=args.device,
                dtype=args.dtype, offload=args.offload, vae_tiling=args.vae_tiling,
                text_encoder_on_cpu=args.text_encoder_cpu)


def resolve_model_dir(model: str | None):
    """The ``--model`` folder, or the bundled default."""
    from pathlib import Path

    from pusa.models import default_model_dir

    return Path(model).expanduser() if model else default_model_dir()
