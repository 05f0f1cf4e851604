"""``pusa calibrate-magcache``: measure a checkpoint's MagCache ratios once, beside its weights.

One text-to-video request on the user's own model, with the options it will be served with (LoRA,
dtype, offload), no step cache. Checked before anything loads, like ``pusa generate``.
"""

from __future__ import annotations

import argparse
import logging
import sys

from pusa.cli_options import add_engine_options, engine_kwargs, resolve_model_dir

log = logging.getLogger(__name__)
DEFAULT_PROMPT = "a red ball rolls slowly across a green lawn under a blue sky"


def add_calibrate_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("calibrate-magcache", help="measure this model's MagCache ratios (for --cache magcache)",
                       description="Run one text-to-video request and write the magnitude ratios --cache magcache "
                                   "needs to MODEL/magcache.json (or --out).",
                       epilog="example:\n  pusa calibrate-magcache --model /models/Wan2.1-T2V-14B --steps 30",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    g = p.add_argument_group("calibration request")
    g.add_argument("--prompt", default=DEFAULT_PROMPT, help="what the calibration video shows")
    g.add_argument("--steps", type=int, help="denoising steps, as you will usually run them (default 10); other "
                                             "step counts are interpolated")
    g.add_argument("--cfg", type=float, help="guidance scale (default 5.0)")
    g.add_argument("--shift", type=float, help="sigma shift (default 5.0)")
    g.add_argument("--size", help="WxH (default: the model's)")
    g.add_argument("--frames", type=int, help="pixel frames, 4k+1 (default: the model's)")
    g.add_argument("--seed", type=int, default=0, help="seed of the calibration run (default 0)")
    g.add_argument("--out", metavar="FILE", help="where to write the ratios (default: MODEL/magcache.json, which "
                                                 "--cache magcache reads)")
    add_engine_options(p)
    p.set_defaults(handler=cmd_calibrate_magcache)


def cmd_calibrate_magcache(args: argparse.Namespace) -> int:
    from pusa.errors import InputError
    from pusa.loading.layout import detect_layout
    from pusa.pipeline import PusaPipeline
    from pusa.settings import GenerationSettings
    from pusa.speed.magcache import calibrate, ratios_path, write_ratios

    if args.cache != "none":
        raise InputError(f"cache: calibrate without a step cache (got --cache {args.cache})")
    raw = {"task": "t2v", "prompt": args.prompt, "seed": args.seed}
    raw.update({k: getattr(args, k) for k in ("steps", "cfg", "shift", "size", "frames")
                if getattr(args, k) is not None})
    settings = GenerationSettings.parse(raw)
    model_dir = resolve_model_dir(args.model)
    layout = detect_layout(model_dir)
    resolved = settings.resolve(layout.family, n_images=0, has_video=False, max_pixel_frames=args.max_pixel_frames)
    out = args.out or ratios_path(model_dir)
    pipe = PusaPipeline.from_pretrained(model_dir, **engine_kwargs(args))
    ratios = calibrate(pipe, resolved)
    path = write_ratios(out, ratios, resolved.to_public_dict())
    print(f"{len(ratios)} expert(s), {', '.join(str(len(r)) for r in ratios)} step(s) measured", file=sys.stderr)
    print(path)
    return 0
