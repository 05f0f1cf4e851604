"""``pusa``: generate videos, inspect model folders, serve the studio, train and evaluate.

Exit codes: 0 success, 2 bad input (message on stderr, no traceback), 1 any other failure.
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import sys
import time
from pathlib import Path
from typing import Any, Sequence

from pusa.cli_options import add_engine_options, engine_kwargs, resolve_model_dir
from pusa.errors import GenerationCancelled, InputError, PusaError

log = logging.getLogger("pusa")

EXAMPLES = {
    "t2v": 'pusa generate t2v --prompt "a red ball bouncing on a wooden floor" --steps 10 --seed 42',
    "i2v": 'pusa generate i2v --image start.png --prompt "the camera slowly pans right" --noise-multipliers 0.2',
    "keyframes": ('pusa generate keyframes --image first.png --image last.png --cond-positions 0,20 '
                  '--noise-multipliers 0.2,0.5 --prompt "a flower opens"'),
    "v2v": ('pusa generate v2v --video input.mp4 --cond-positions 0,1,2,3 --noise-multipliers 0,0,0,0 '
            '--prompt "the car keeps driving down the road"'),
}
TASK_HELP = {
    "t2v": "text to video",
    "i2v": "image to video (the image pinned at latent frame 0)",
    "keyframes": "several images pinned at latent positions (start/end frames, transitions)",
    "v2v": "keep chosen latent frames of a video (extension, completion)",
}

# CLI flag -> settings field; only flags the user gave are passed, so the settings' defaults apply.
SETTING_FLAGS = {
    "prompt": "prompt", "negative_prompt": "negative_prompt", "steps": "steps", "lora_alpha": "lora_alpha",
    "lora_alpha_low": "lora_alpha_low", "extra_lora_scale": "extra_lora_scale", "cond_positions": "cond_positions",
    "noise_multipliers": "noise_multipliers", "cfg": "cfg", "shift": "shift", "size": "size", "frames": "frames",
    "fps": "fps", "seed": "seed", "fit": "fit",
}


def _add_generate(sub: argparse._SubParsersAction) -> None:
    gen = sub.add_parser("generate", help="generate a video", description="Generate a video with the Pusa engine.",
                         epilog="examples:\n  " + "\n  ".join(EXAMPLES.values()),
                         formatter_class=argparse.RawDescriptionHelpFormatter)
    tasks = gen.add_subparsers(dest="task", required=True, metavar="TASK")
    for task in ("t2v", "i2v", "keyframes", "v2v"):
        p = tasks.add_parser(task, help=TASK_HELP[task], description=f"{TASK_HELP[task].capitalize()}.",
                             epilog=f"example:\n  {EXAMPLES[task]}", formatter_class=argparse.RawDescriptionHelpFormatter)
        g = p.add_argument_group("request")
        g.add_argument("--prompt", required=True, help="what the video shows")
        g.add_argument("--negative-prompt", help="what to avoid (default: Wan's usual artefact list)")
        if task in ("i2v", "keyframes"):
            g.add_argument("--image", action="append", required=True, metavar="FILE",
                           help="condition image (PNG/JPEG/WebP); repeat for keyframes, in position order")
        if task == "v2v":
            g.add_argument("--video", required=True, metavar="FILE", help="input video (any format PyAV reads)")
        if task != "t2v":
            g.add_argument("--cond-positions", metavar="LIST", help='latent frame indices, e.g. "0,20" (0..20 for 81 '
                                                                    'frames)' + ("; required" if task == "v2v" else ""))
            g.add_argument("--noise-multipliers", metavar="LIST", help='one per position, 0..1, e.g. "0.2,0.5"; lower '
                                                                       'keeps the condition more faithful')
            g.add_argument("--fit", choices=["crop", "letterbox"], help="fit inputs of another aspect (default crop)")
        g.add_argument("--lora-alpha", type=float, help="Pusa LoRA strength 0-5 (default 1.4); Wan2.2: high-noise")
        g.add_argument("--lora-alpha-low", type=float, help="Wan2.2: low-noise LoRA strength")
        g.add_argument("--extra-lora-scale", type=float, help="scale of --extra-lora (default 1.0)")
        g.add_argument("--steps", type=int, help="denoising steps 1-50 (default 10)")
        g.add_argument("--cfg", type=float, help="guidance scale (default 5.0; 1 = no negative pass)")
        g.add_argument("--shift", type=float, help="sigma shift (default 5.0)")
        g.add_argument("--seed", type=int, help="random when omitted; the used seed is printed")
        g.add_argument("--size", help="WxH (multiples of 16) or 480p/720p; default: the model's")
        g.add_argument("--frames", type=int, help="pixel frames, 4k+1 (default: the model's, 81 for Wan)")
        g.add_argument("--fps", type=int, help="frames per second of the MP4 (default 16)")
        g.add_argument("--output", metavar="PATH", help="an .mp4 file, or a folder for lossless PNG frames "
                                                        "(default: outputs/<task>_<time>_<seed>.mp4)")
        g.add_argument("--overwrite", action="store_true", help="replace an existing output")
        g.add_argument("--no-progress", action="store_true", help="no progress bar")
        add_engine_options(p)
        p.set_defaults(handler=cmd_generate)


def _add_info(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("info", help="list the components detected in a model folder",
                       epilog="example:\n  pusa info /models/Wan2.1-T2V-14B",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", nargs="?", help="model folder (default: the bundled model)")
    p.set_defaults(handler=cmd_info)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pusa", description="Pusa V1 video generation on Wan2.1/Wan2.2.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging and tracebacks")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_generate(sub)
    _add_info(sub)
    # The service and the trainer register their own subcommands.
    if importlib.util.find_spec("pusa.service.cli"):
        from pusa.service.cli import add_serve_parser

        add_serve_parser(sub)
    if importlib.util.find_spec("pusa.training.cli"):
        from pusa.training.cli import add_eval_parser, add_train_parser

        add_train_parser(sub)
        add_eval_parser(sub)
    return parser


def settings_from_args(args: argparse.Namespace) -> dict[str, Any]:
    data: dict[str, Any] = {"task": args.task}
    for flag, name in SETTING_FLAGS.items():
        value = getattr(args, flag, None)
        if value is not None:
            data[name] = value
    return data


class _Progress:
    """A tqdm bar over the denoising steps, with the other phases as its description."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self.bar = None

    def __call__(self, info) -> None:
        if not self.enabled:
            return
        from tqdm import tqdm

        if info.phase == "denoise":
            if self.bar is None:
                self.bar = tqdm(total=info.total, desc="denoise", unit="step", file=sys.stderr)
            self.bar.n = info.step
            self.bar.refresh()
        elif self.bar is not None and info.phase == "decode" and info.step == 0:
            self.bar.set_description("decode")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def cmd_generate(args: argparse.Namespace) -> int:
    from pusa.media import save_video
    from pusa.models import is_random_model
    from pusa.pipeline import PusaPipeline
    from pusa.settings import GenerationSettings

    settings = GenerationSettings.parse(settings_from_args(args))  # bad input fails before loading anything
    for path in [*(getattr(args, "image", None) or []), *([args.video] if getattr(args, "video", None) else [])]:
        if not Path(path).is_file():
            raise InputError(f"{'video' if path == getattr(args, 'video', None) else 'image'}: file not found: {path}")
    out = Path(args.output) if args.output else None
    if out is not None and not args.overwrite:  # refuse before spending minutes on a video we cannot write
        if out.is_dir() and any(out.iterdir()):
            raise InputError(f"output: folder {out} is not empty; choose another folder or pass --overwrite")
        if out.exists() and not out.is_dir():
            raise InputError(f"output: {out} already exists; choose another name or pass --overwrite")
    model_dir = resolve_model_dir(args.model)
    if is_random_model(model_dir):
        print("note: using a tiny RANDOM test model; its output is noise, not a real video. "
              "Pass --model with real weights.", file=sys.stderr)
    t0 = time.perf_counter()
    pipe = PusaPipeline.from_pretrained(model_dir, **engine_kwargs(args))
    log.info("model loaded in %.1fs", time.perf_counter() - t0)
    progress = _Progress(not args.no_progress)
    try:
        result = pipe.generate(settings, images=getattr(args, "image", None), video=getattr(args, "video", None),
                               callback=progress)
    finally:
        progress.close()
    output = args.output or (Path("outputs") / f"{settings.task}_{time.strftime('%Y%m%d-%H%M%S')}_{result.seed}.mp4")
    path = save_video(result, output, overwrite=args.overwrite)
    print(f"seed: {result.seed}", file=sys.stderr)
    print(path)
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from pusa.loading.layout import detect_layout

    layout = detect_layout(resolve_model_dir(args.model))
    width = max(len(k) for k, _ in layout.describe())
    for key, value in layout.describe():
        print(f"{key:<{width}}  {value}")
    return 0


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


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    if args.command in ("train", "eval") and not args.verbose:
        logging.getLogger("pusa").setLevel(logging.INFO)  # their progress lines are the output
    return run_handler(args)


if __name__ == "__main__":
    sys.exit(main())
