"""argparse front-ends of `pusa train` and `pusa eval` (registered by ``pusa/cli.py``).

Also runnable on its own, which is what ``accelerate launch`` needs:
``accelerate launch -m pusa.training.cli train --model ... --data ... --output ...``.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from pusa.errors import InputError

log = logging.getLogger(__name__)

TRAIN_EXAMPLE = """example (CPU, a few minutes):
  python -m pusa.training.synthetic data/shapes --count 200 --seed 0
  pusa train --data data/shapes --output runs/vta --steps 300 --rank 16 --lora-alpha 16
  pusa generate i2v --lora runs/vta/pusa_lora.safetensors --image first.png --prompt "a red circle moving right fast" --output out.mp4
several GPUs (DDP / DeepSpeed / FSDP from `accelerate config`):
  accelerate launch -m pusa.training.cli train --model Wan2.1-T2V-14B --data my_clips --output runs/pusa \\
      --rank 512 --lora-alpha 512 --lr 1e-5 --mixed-precision bf16 --gradient-checkpointing --size 832x480 --frames 81
"""

EVAL_EXAMPLE = """example (bundled pusa-tiny, about 5 minutes on 2 CPU cores):
  pusa eval --cases 3
  pusa eval --alphas 0,1.4 --multipliers 0.2 --cases 2 --json eval.json
"""


def _default_model() -> str:
    from pusa.bundled import default_model_dir

    return str(default_model_dir())


def _floats(text: str) -> list[float]:
    try:
        return [float(v) for v in text.replace(" ", ",").split(",") if v]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of numbers") from None


def _size(text: str) -> tuple[int, int]:
    from pusa.settings_parsing import parse_size

    try:
        return parse_size(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def add_train_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``train``: VTA LoRA (or full) fine-tuning on a folder of captioned videos."""
    p = subparsers.add_parser(
        "train", help="fine-tune a VTA (Pusa) LoRA on a folder of captioned videos",
        description="VTA fine-tuning: every latent frame gets its own timestep, so the model learns "
                    "image-to-video, keyframes and extension without task-specific training.",
        epilog=TRAIN_EXAMPLE, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", help="base model folder (default: the bundled pusa-tiny)")
    p.add_argument("--data", required=True, help="folder with videos + metadata.jsonl/.csv (file, caption)")
    p.add_argument("--output", required=True, help="run folder: checkpoints, samples, exported weights")
    p.add_argument("--mode", choices=("lora", "full"), default="lora")
    p.add_argument("--rank", type=int, default=16, help="LoRA rank (Pusa V1: 512)")
    p.add_argument("--lora-alpha", type=float, default=None, help="PEFT lora_alpha (default: = rank, scale 1)")
    p.add_argument("--targets", default=",".join(_targets()), help="LoRA target modules (diffusers names)")
    p.add_argument("--timesteps", choices=("vta", "uniform"), default="vta",
                   help="vta: independent timestep per latent frame; uniform: one per clip (plain T2V)")
    p.add_argument("--shift", type=float, default=5.0, help="shift of the 1000-step training sigma table")
    p.add_argument("--weighting", choices=("bell", "none"), default="bell", help="per-timestep loss weight")
    p.add_argument("--cond-prob", type=float, default=0.0,
                   help="probability of condition-like draws (low-noise first/prefix/end frames)")
    p.add_argument("--caption-dropout", type=float, default=0.1, help="share of empty captions (for CFG)")
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--lr-schedule", choices=("constant", "cosine"), default="constant")
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--batch-size", type=int, default=1)
    p.add_argument("--grad-accum", type=int, default=1)
    p.add_argument("--mixed-precision", choices=("no", "bf16", "fp16"), default="no")
    p.add_argument("--gradient-checkpointing", action="store_true")
    p.add_argument("--size", type=_size, help="WIDTHxHEIGHT of the training clips (default: the model's)")
    p.add_argument("--frames", type=int, help="frames per clip, 4k+1 (default: the model's)")
    p.add_argument("--cache-dir", help="where cached latents go (default: DATA/.pusa_cache)")
    p.add_argument("--checkpoint-every", type=int, default=500)
    p.add_argument("--keep-checkpoints", type=int, default=2)
    p.add_argument("--sample-every", type=int, default=0, help="render sample videos every N steps (0: never)")
    p.add_argument("--sample-prompt", action="append", default=[], help="prompt for samples (repeatable)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--resume", action="store_true", help="continue from the latest checkpoint in --output")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (logs only)")
    p.set_defaults(handler=run_train)
    return p


def _targets() -> tuple[str, ...]:
    from pusa.training.trainer import PUSA_TARGETS

    return PUSA_TARGETS


def run_train(args: argparse.Namespace) -> int:
    """Handler of ``pusa train``: exit 0 on success, 2 on bad input, 1 on other failures."""
    from pusa.training.trainer import TrainConfig, train

    width, height = args.size if args.size else (None, None)
    cfg = TrainConfig(
        model=args.model or _default_model(), data=args.data, output=args.output, mode=args.mode,
        lora_rank=args.rank, lora_alpha=args.lora_alpha if args.lora_alpha is not None else float(args.rank),
        targets=tuple(t for t in args.targets.split(",") if t), timestep_mode=args.timesteps, shift=args.shift,
        weighting=args.weighting, cond_prob=args.cond_prob, caption_dropout=args.caption_dropout,
        learning_rate=args.lr, lr_schedule=args.lr_schedule, warmup_steps=args.warmup, steps=args.steps,
        batch_size=args.batch_size, grad_accum=args.grad_accum, mixed_precision=args.mixed_precision,
        gradient_checkpointing=args.gradient_checkpointing, width=width, height=height, frames=args.frames,
        cache_dir=args.cache_dir, checkpoint_every=args.checkpoint_every, keep_checkpoints=args.keep_checkpoints,
        sample_every=args.sample_every, sample_prompts=tuple(args.sample_prompt), seed=args.seed,
        resume=args.resume, progress=not args.no_progress)
    result = train(cfg)
    out = result.lora or result.transformer
    if out is None:  # a non-main process of a distributed run: the main one exports and reports
        return 0
    log.info("done: step %d, last loss %.4f, %.0f s; weights: %s", result.step,
             result.losses[-1] if result.losses else float("nan"), result.seconds, out)
    return 0


def add_eval_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``eval``: score a model + VTA LoRA on held-out synthetic cases."""
    p = subparsers.add_parser(
        "eval", help="score i2v / v2v / keyframes on held-out synthetic cases, and i2v on unseen kinds of picture",
        description="Generates held-out synthetic cases through the engine and measures condition-frame "
                    "PSNR, trajectory error (i2v, v2v extension), keyframe hit and temporal consistency, "
                    "as a table over LoRA alpha x noise multiplier.",
        epilog=EVAL_EXAMPLE, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", help="model folder (default: the bundled pusa-tiny)")
    p.add_argument("--lora", help="VTA LoRA file (default: the model's own)")
    p.add_argument("--alphas", type=_floats, default=[0.0, 1.0, 1.4, 2.0])
    p.add_argument("--multipliers", type=_floats, default=[0.0, 0.2, 0.5])
    from pusa.training.evaluate import EVAL_TASKS

    p.add_argument("--tasks", default=",".join(EVAL_TASKS), help=f"subset of {','.join(EVAL_TASKS)}")
    p.add_argument("--cases", type=int, default=4, help="held-out cases per task")
    p.add_argument("--ood-cases", type=int, default=2,
                   help="i2v cases per out-of-distribution kind (fields, photo, studio); 0 skips them")
    p.add_argument("--vae-cases", type=int, default=4,
                   help="pictures per kind for the per-kind VAE PSNR (64x64 and 96x64); 0 skips it")
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--cfg", type=float, default=1.0, help="guidance scale (1: one forward per step)")
    p.add_argument("--seed", type=int, default=1234, help="seed of the held-out cases and of the noise")
    p.add_argument("--json", help="also write the results as JSON here")
    p.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    p.set_defaults(handler=run_eval)
    return p


def run_eval(args: argparse.Namespace) -> int:
    """Handler of ``pusa eval``: prints the table (this is the command's output, hence print)."""
    from pusa.training.evaluate import EVAL_TASKS, EvalConfig, format_table, run_evaluation

    tasks = tuple(t for t in args.tasks.split(",") if t)
    bad = [t for t in tasks if t not in EVAL_TASKS]
    if bad:
        raise InputError(f"tasks: {bad[0]!r} is not allowed; expected a subset of {', '.join(EVAL_TASKS)}")
    for name in ("ood_cases", "vae_cases"):
        if getattr(args, name) < 0:
            raise InputError(f"{name.replace('_', '-')}: {getattr(args, name)} is not allowed; expected 0 or more")
    cfg = EvalConfig(model=args.model or _default_model(), lora=args.lora, alphas=tuple(args.alphas),
                     multipliers=tuple(args.multipliers), tasks=tasks, cases=args.cases, steps=args.steps,
                     cfg=args.cfg, seed=args.seed, ood_cases=args.ood_cases, vae_cases=args.vae_cases)
    report = run_evaluation(cfg)
    print(format_table(report, markdown=args.markdown))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Standalone entry (``python -m pusa.training.cli train|eval ...``), e.g. under accelerate launch."""
    from pusa.cli_options import OneLineParser, join_list_values

    parser = OneLineParser(prog="pusa-training")
    sub = parser.add_subparsers(dest="command", required=True)
    add_train_parser(sub)
    add_eval_parser(sub)
    args = parser.parse_args(join_list_values(sys.argv[1:] if argv is None else argv))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    from pusa.cli_options import run_handler

    return run_handler(args)


if __name__ == "__main__":
    sys.exit(main())
