"""``pusa``: generate videos, inspect model folders, serve the studio, train and evaluate.

Exit codes: 0 success, 2 bad input (one line on stderr, no traceback), 1 any other failure, 130
cancelled (see :func:`pusa.cli_options.run_handler`). Subcommands are built from the task registry.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any, Sequence

from pusa.cli_options import (OneLineParser, add_engine_options, engine_kwargs, join_list_values,
                              quiet_library_progress, resolve_model_dir, run_handler)
from pusa.errors import InputError
from pusa.parallel.cli import add_parallel_options
from pusa.tasks import TASKS, TaskSpec

log = logging.getLogger("pusa")

# CLI flag -> settings field; only flags the user gave are passed, so the settings' defaults apply.
SETTING_FLAGS = ("prompt", "negative_prompt", "steps", "lora_alpha", "lora_alpha_low", "extra_lora_scale",
                 "cond_positions", "noise_multipliers", "cfg", "shift", "size", "frames", "fps", "seed", "fit",
                 "window", "overlap", "overlap_multipliers", "color_match", "extend")


def _add_task_inputs(g: argparse._ArgumentGroup, spec: TaskSpec) -> None:
    """The input flags a task takes, from its registry entry."""
    if spec.takes_images:
        g.add_argument("--image", action="append", required=True, metavar="FILE",
                       help="condition image (PNG/JPEG/WebP)" + ("; repeat for several, in position order"
                                                                  if spec.max_images != 1 else ""))
    if spec.takes_video:
        g.add_argument("--video", required=True, metavar="FILE", help="input video (any format PyAV reads)")
    if spec.conditioned:
        g.add_argument("--cond-positions", metavar="LIST",
                       help='latent frame indices, e.g. "0,20" (0..20 for 81 frames)'
                            + ("; required" if spec.positions == "required" else ""))
        g.add_argument("--noise-multipliers", metavar="LIST", help='one per position, 0..1, e.g. "0.2,0.5"; lower '
                                                                   'keeps the condition more faithful')
        g.add_argument("--fit", choices=["crop", "letterbox"], help="fit inputs of another aspect (default crop)")


def _add_long_video(p: argparse.ArgumentParser, spec: TaskSpec) -> None:
    """Options of videos longer than the model's window (docs/long-video.md)."""
    g = p.add_argument_group("long video (--frames beyond the model's window: chained windows)")
    g.add_argument("--window", type=int, metavar="N", help="latent frames per window (default: the model's, 21 "
                                                           "for Wan, 9 for the bundled model)")
    g.add_argument("--overlap", type=int, metavar="N", help="latent frames each window takes over from the previous "
                                                            "one (default: about a fifth of the window)")
    g.add_argument("--overlap-multipliers", metavar="LIST", help="noise multiplier per overlap frame, 0..1 (default 0)")
    g.add_argument("--no-color-match", dest="color_match", action="store_false", default=None,
                   help="do not match each window's colours to the first window's")
    if spec.takes_video:
        g.add_argument("--extend", type=int, metavar="N", help="write the whole input video followed by N new "
                                                               "frames (a multiple of 4) continuing it")


def _add_generate(sub: argparse._SubParsersAction) -> None:
    gen = sub.add_parser("generate", help="generate a video", description="Generate a video with the Pusa engine.",
                         epilog="examples:\n  " + "\n  ".join(t.cli_example for t in TASKS.values()),
                         formatter_class=argparse.RawDescriptionHelpFormatter)
    tasks = gen.add_subparsers(dest="task", required=True, metavar="TASK")
    for spec in TASKS.values():
        p = tasks.add_parser(spec.name, help=spec.summary, description=f"{spec.summary.capitalize()}.",
                             epilog=f"example:\n  {spec.cli_example}",
                             formatter_class=argparse.RawDescriptionHelpFormatter)
        g = add_request_options(p, spec)
        g.add_argument("--output", metavar="PATH", help="an .mp4 file, or a folder for lossless PNG frames "
                                                        "(default: outputs/<task>_<time>_<seed>.mp4)")
        g.add_argument("--overwrite", action="store_true", help="replace an existing output")
        g.add_argument("--no-progress", action="store_true", help="no progress bar")
        add_engine_options(p)
        add_parallel_options(p)
        p.set_defaults(handler=cmd_generate)


def add_request_options(p: argparse.ArgumentParser, spec: TaskSpec) -> argparse._ArgumentGroup:
    """The settings and input flags of one task (``pusa generate`` and ``pusa sweep`` share them);
    returns the "request" group for the caller's own output flags."""
    g = p.add_argument_group("request")
    g.add_argument("--prompt", required=True, action="append",
                   help="what the video shows; repeat for a long video: one per window, the last repeats")
    g.add_argument("--negative-prompt", help="what to avoid (default: Wan's usual artefact list)")
    _add_task_inputs(g, spec)
    g.add_argument("--lora-alpha", type=float, help="Pusa LoRA strength 0-5 (default 1.4); Wan2.2: high-noise")
    g.add_argument("--lora-alpha-low", type=float, help="Wan2.2: low-noise LoRA strength")
    g.add_argument("--extra-lora-scale", type=float, help="scale of --extra-lora (default 1.0)")
    g.add_argument("--steps", type=int, help="denoising steps 1-50 (default 10)")
    g.add_argument("--cfg", type=float, help="guidance scale (default 5.0; 1 = no negative pass)")
    g.add_argument("--shift", type=float, help="sigma shift (default 5.0)")
    g.add_argument("--seed", type=int, help="random when omitted; the used seed is printed")
    g.add_argument("--size", help="WxH (multiples of 16) or 480p/720p; default: the model's")
    g.add_argument("--frames", type=int, help="pixel frames, 4k+1 (default: the model's, 81 for Wan)")
    g.add_argument("--fps", type=int, help="frames per second of the MP4 (default: the model's, 16 for Wan)")
    _add_long_video(p, spec)
    return g


def _add_info(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("info", help="list the components detected in a model folder",
                       epilog="example:\n  pusa info /models/Wan2.1-T2V-14B",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", nargs="?", help="model folder (default: the bundled model)")
    p.set_defaults(handler=cmd_info)


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="pusa", description="Pusa V1 video generation on Wan2.1/Wan2.2.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging and tracebacks")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_generate(sub)
    from pusa.sweep_cli import add_sweep_parser

    add_sweep_parser(sub)
    _add_info(sub)
    from pusa.speed.calibrate_cli import add_calibrate_parser

    add_calibrate_parser(sub)
    # The service and the trainer register their own subcommands.
    from pusa.service.cli import add_serve_parser
    from pusa.training.cli import add_eval_parser, add_train_parser

    add_serve_parser(sub)
    add_train_parser(sub)
    add_eval_parser(sub)
    return parser


def settings_from_args(args: argparse.Namespace) -> dict[str, Any]:
    data: dict[str, Any] = {"task": args.task}
    for name in SETTING_FLAGS:
        value = getattr(args, name, None)
        if value is not None:
            data[name] = value
    if isinstance(data.get("prompt"), list) and len(data["prompt"]) == 1:
        data["prompt"] = data["prompt"][0]  # one --prompt: the plain form; several: one per window
    return data


class _Progress:
    """A tqdm bar over the denoising steps, then over the decoded latent frames."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self.bar = None
        self.phase = ""

    def __call__(self, info) -> None:
        if not self.enabled or info.phase not in ("denoise", "decode"):
            return
        from tqdm import tqdm

        if info.phase != self.phase:
            self.close()
            self.phase = info.phase
            unit = "step" if info.phase == "denoise" else "frame"
            self.bar = tqdm(total=info.total, desc=info.phase, unit=unit, file=sys.stderr)
        if info.windows > 1 and info.phase == "denoise":
            self.bar.set_description(f"window {info.window}/{info.windows}", refresh=False)
        self.bar.n = info.step
        self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def check_output(output: str | None, overwrite: bool) -> Path | None:
    """Refuse an output we could not write before spending minutes on the video (exit 2)."""
    from pusa.media import is_frame_folder_target

    if output is None:
        return None
    out = Path(output)
    if not is_frame_folder_target(out) and out.suffix.lower() != ".mp4":
        raise InputError(f"output: {out.name} must end in .mp4, or name a folder for lossless PNG frames")
    if not overwrite:
        if out.is_dir() and any(out.iterdir()):
            raise InputError(f"output: folder {out} is not empty; choose another folder or pass --overwrite")
        if out.exists() and not out.is_dir():
            raise InputError(f"output: {out} already exists; choose another name or pass --overwrite")
    parent = out if is_frame_folder_target(out) else out.parent
    existing = parent.absolute()
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise InputError(f"output: cannot write under {existing} (not a writable folder)")
    return out


def cmd_generate(args: argparse.Namespace) -> int:
    """Every input is checked (settings, model folder, images, video, output) before any weight loads."""
    from pusa.loading.layout import detect_layout
    from pusa.long_video import generate_video
    from pusa.media import save_video
    from pusa.parallel.cli import plan_degrees, start_ranks
    from pusa.parallel.launch import run_ranks
    from pusa.parallel.runtime import launched_by_torchrun
    from pusa.pipeline import PusaPipeline
    from pusa.settings import GenerationSettings

    settings = GenerationSettings.parse(settings_from_args(args))
    out = check_output(args.output, args.overwrite)
    model_dir = resolve_model_dir(args.model)
    layout = detect_layout(model_dir)
    images, video = getattr(args, "image", None), getattr(args, "video", None)
    resolved = settings.resolve(layout.family, n_images=len(images or []), has_video=video is not None,
                                max_pixel_frames=args.max_pixel_frames)
    pil_images = _read_images(images)
    frames_in = _read_video(video, resolved, layout.family)
    degrees = plan_degrees(args, layout.family, resolved)  # --nproc / torchrun: degrees checked before loading
    if degrees is not None and not launched_by_torchrun():
        return run_ranks(args.argv, degrees)  # this process only starts the ranks and waits for them
    ranks = start_ranks(args, degrees)  # None for one process
    settings = ranks.same_seed(settings) if ranks else settings  # same seed, same noise on every rank
    t0 = time.perf_counter()
    kwargs = engine_kwargs(args)
    pipe = PusaPipeline.from_pretrained(model_dir, **(ranks.load_kwargs(kwargs) if ranks else kwargs))
    if ranks:
        ranks.attach(pipe)
    log.info("model loaded in %.1fs", time.perf_counter() - t0)
    progress = _Progress(not args.no_progress)
    try:
        result = generate_video(pipe, settings, images=pil_images or None, video=frames_in, callback=progress)
        if ranks and not ranks.is_main:
            return 0  # rank 0 alone writes and prints
        output = out or (Path("outputs") / f"{settings.task}_{time.strftime('%Y%m%d-%H%M%S')}_{result.seed}.mp4")
        path = save_video(result, output, overwrite=args.overwrite)  # a long video is decoded while written
    finally:
        progress.close()
        if ranks:
            ranks.close()
    print(f"seed: {result.seed}", file=sys.stderr)
    print(path)
    return 0


def _read_images(paths: list[str] | None) -> list:
    from pusa.media import iter_images

    return iter_images(paths)


def _read_video(path: str | None, s, family) -> list | None:
    """The input video's frames at the output size; too short for the positions is an input error now."""
    if path is None:
        return None
    from pusa.errors import MediaError
    from pusa.media import read_video_frames

    frames = read_video_frames(path, max_frames=None if s.extend else s.frames, fit=(s.width, s.height, s.fit))
    if s.extend:
        need = family.pixel_frames(len(s.cond_positions))
        what = f"extending from its last {len(s.cond_positions)} latent frames"
    else:
        need = family.frames_needed(max(s.cond_positions or [0]))
        what = f"position {max(s.cond_positions or [0])}"
    if len(frames) < need:
        raise MediaError(f"video: {what} needs at least {need} frames of the input video; {Path(path).name} has "
                         f"{len(frames)}")
    return frames


def cmd_info(args: argparse.Namespace) -> int:
    from pusa.loading.layout import detect_layout

    layout = detect_layout(resolve_model_dir(args.model))
    width = max(len(k) for k, _ in layout.describe())
    for key, value in layout.describe():
        print(f"{key:<{width}}  {value}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(join_list_values(sys.argv[1:] if argv is None else argv))
    args.argv = list(sys.argv[1:] if argv is None else argv)  # --nproc starts the same command again
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    quiet_library_progress()
    if args.command in ("train", "eval") and not args.verbose:
        logging.getLogger("pusa").setLevel(logging.INFO)  # their progress lines are the output
    return run_handler(args)


if __name__ == "__main__":
    sys.exit(main())
