"""Command-line plumbing shared by every ``pusa`` subcommand (generate, serve, train, eval).

Engine options, the bundled-model default, one-line usage errors and the exit-code contract live
here so that ``pusa.cli`` and the subcommands registered by other packages import this module, and
never each other.

Exit codes: 0 success, 2 bad input (one line on stderr, no traceback), 1 any other failure,
130 cancelled.
"""

from __future__ import annotations

import argparse
import logging
import re
import sys
from pathlib import Path
from typing import Any, Sequence

from pusa.errors import GenerationCancelled, InputError, PusaError
from pusa.loading.devices import DTYPES, OFFLOAD_MODES
from pusa.speed.cli import add_speed_options, speed_kwargs

log = logging.getLogger("pusa")

# Options whose value may start with "-" (a negative position is the user's mistake to report, not a flag).
LIST_OPTIONS = ("--cond-positions", "--noise-multipliers", "--alphas", "--multipliers")
_NUMBER_LIST = re.compile(r"^-[\d.]+([,\s;]+-?[\d.]+)*$")


class OneLineParser(argparse.ArgumentParser):
    """Usage errors as one line naming the problem and where the help is (not the whole usage)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"error: {message} (see: {self.prog} --help)\n")


def join_list_values(argv: Sequence[str]) -> list[str]:
    """``--cond-positions -1,8`` -> ``--cond-positions=-1,8`` so argparse does not read it as an option."""
    out: list[str] = []
    args = list(argv)
    i = 0
    while i < len(args):
        if args[i] in LIST_OPTIONS and i + 1 < len(args) and _NUMBER_LIST.match(args[i + 1]):
            out.append(f"{args[i]}={args[i + 1]}")
            i += 2
            continue
        out.append(args[i])
        i += 1
    return out


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
    g.add_argument("--vae-dtype", default="fp32", choices=list(DTYPES),
                   help="VAE precision (default: fp32, exact); bf16 halves the VAE's memory and, on a CPU with "
                        "AVX512-BF16/AMX, decoded 2.2x faster, about a uint8 level off (docs/training.md, decode speed)")
    g.add_argument("--vae-tiling", action="store_true", help="decode in tiles (less VRAM at 720p)")
    g.add_argument("--decoder", metavar="DIR", help="decode with this narrower VAE of the model's latent space "
                                                    "(a folder from python -m pusa.training.light_decoder): "
                                                    "faster, its own pixels; encoding keeps the model's VAE")
    g.add_argument("--text-encoder-cpu", action="store_true", help="keep the UMT5 encoder on the CPU (saves ~11 GB VRAM)")
    g.add_argument("--max-pixel-frames", type=int, metavar="N",
                   help="largest width x height x frames a request may ask (default: 4x the model's default "
                        "window, e.g. 832x480x81x4)")
    add_speed_options(parser)


def engine_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """``PusaPipeline.from_pretrained`` keyword arguments from parsed options (model resolved separately)."""
    return dict(lora=args.lora, lora_low=args.lora_low, extra_lora=args.extra_lora,
                extra_lora_low=args.extra_lora_low, use_default_lora=not args.no_default_lora, device=args.device,
                dtype=args.dtype, vae_dtype=args.vae_dtype, offload=args.offload, vae_tiling=args.vae_tiling,
                decoder=args.decoder,
                text_encoder_on_cpu=args.text_encoder_cpu, max_pixel_frames=getattr(args, "max_pixel_frames", None),
                **speed_kwargs(args))


def resolve_model_dir(model: str | None) -> Path:
    """The ``--model`` folder, or the bundled default."""
    from pusa.bundled import default_model_dir

    return Path(model).expanduser() if model else default_model_dir()


def quiet_library_progress() -> None:
    """The command line shows its own progress; diffusers' and transformers' per-file bars would
    flood it. Called by the ``pusa`` entry point only (it owns its process), never by the library."""
    from diffusers.utils import logging as dlog
    from transformers.utils import logging as tlog

    dlog.disable_progress_bar()
    tlog.disable_progress_bar()


def run_handler(args: argparse.Namespace) -> int:
    """Run a subcommand's handler with the exit-code contract shared by every ``pusa`` command."""
    verbose = getattr(args, "verbose", False)
    try:
        return int(args.handler(args) or 0)
    except InputError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except (GenerationCancelled, KeyboardInterrupt):
        print("cancelled", file=sys.stderr)
        return 130
    except PusaError as e:
        if verbose:
            raise
        print(f"error: {e}", file=sys.stderr)
        return 1
    except Exception as e:  # keep the promise "1 on other failures" with a readable line
        if verbose:
            raise
        print(f"error: {type(e).__name__}: {e} (run with -v for the traceback)", file=sys.stderr)
        return 1
