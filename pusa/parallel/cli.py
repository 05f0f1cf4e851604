"""The command line's side of many processes: options, the checks made before loading, and rank setup.

``pusa generate ... --nproc N`` is checked like any other command (settings, inputs, output, model
folder), then the degrees are resolved against the model's heads and the request's size, and only
then is the same command started as N ranks (:func:`pusa.parallel.launch.run_ranks`). Started
directly under ``torchrun --nproc-per-node N``, the command finds itself a rank and runs the same
checks. Rank 0 alone prints and writes; the others stay quiet unless they fail.
"""

from __future__ import annotations

import argparse
import logging
import warnings
from typing import TYPE_CHECKING

from pusa.errors import InputError
from pusa.parallel.degrees import Degrees, check_tokens, resolve_degrees
from pusa.parallel.runtime import (DEFAULT_TIMEOUT_S, RankGroup, launched_by_torchrun, ring_supported,
                                   world_size_from_env)

if TYPE_CHECKING:
    from pusa.family import ModelFamily
    from pusa.settings import GenerationSettings

# Libraries that warn on every rank about experimental or per-call details of parallel runs.
_CHATTY_LOGGERS = ("diffusers.models.modeling_utils", "diffusers.hooks.context_parallel")


def add_parallel_options(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("many processes (one video split over N GPUs; see README 'Many GPUs')")
    g.add_argument("--nproc", type=int, metavar="N", help="run as N ranks under torchrun (one per GPU); the "
                                                          "output equals the single-process one")
    g.add_argument("--ulysses-degree", type=int, metavar="N", help="ranks splitting the tokens with Ulysses "
                                                                   "attention (must divide the model's heads)")
    g.add_argument("--ring-degree", type=int, metavar="N", help="ranks splitting the tokens with ring attention "
                                                                "(CUDA with bf16/fp16 only)")
    g.add_argument("--cfg-parallel", type=int, metavar="N", help="1, or 2: the positive and negative prompt on "
                                                                 "two halves of the ranks (needs --cfg above 1)")
    g.add_argument("--rank-timeout", type=float, default=DEFAULT_TIMEOUT_S, metavar="SECONDS",
                   help=f"longest one rank waits for another before the run fails (default {DEFAULT_TIMEOUT_S:g})")


def _device_type(requested: str) -> str:
    import torch

    return "cuda" if requested in ("auto", "cuda") and torch.cuda.is_available() else "cpu"


def plan_degrees(args: argparse.Namespace, family: "ModelFamily", settings: "GenerationSettings") -> Degrees | None:
    """The degrees of this run, or ``None`` for one process; every problem is an ``InputError``
    (exit 2) raised before anything loads."""
    nproc = args.nproc
    if launched_by_torchrun():
        world = world_size_from_env()
        if nproc is not None and nproc != world:
            raise InputError(f"nproc: {nproc} was asked for, but torchrun started {world} ranks; leave --nproc "
                             "out under torchrun or make them equal")
        nproc = world
    nproc = 1 if nproc is None else nproc
    given = (args.ulysses_degree, args.ring_degree, args.cfg_parallel)
    if nproc == 1 and all(d in (None, 1) for d in given):
        if args.nproc is not None and args.nproc < 1:
            raise InputError(f"nproc: {args.nproc} is not allowed; expected a whole number of at least 1")
        return None
    if args.rank_timeout <= 0:
        raise InputError(f"rank-timeout: {args.rank_timeout:g} is not allowed; expected seconds above 0")
    if args.offload != "none":
        raise InputError(f"offload: {args.offload!r} is not allowed with several ranks; expected none (each rank "
                         "holds its DiT; the sequence is what is split)")
    degrees = resolve_degrees(nproc, family.num_heads, float(settings.cfg), ulysses=args.ulysses_degree,
                              ring=args.ring_degree, cfg_parallel=args.cfg_parallel,
                              ring_supported=ring_supported(_device_type(args.device)))
    if degrees.world == 1:
        return None
    check_speed_options(args, degrees)
    if degrees.ring > 1 and args.dtype == "fp32":
        raise InputError("dtype: 'fp32' is not allowed with --ring-degree above 1; expected auto, bf16 or fp16 "
                         "(ring attention runs on cuDNN, which takes half precision)")
    stride = family.spatial_stride
    check_tokens(degrees, family.tokens_per_frame(settings.height // stride, settings.width // stride),
                 f"{settings.width}x{settings.height}")
    return degrees


def check_speed_options(args: argparse.Namespace, degrees: Degrees) -> None:
    """A step cache decides per rank whether to skip the DiT's blocks; ranks that split the tokens
    must all run them (their attention exchanges data), so caches go with CFG-parallel alone."""
    cache = getattr(args, "cache", "none") or "none"
    if cache != "none" and degrees.context > 1:
        raise InputError(f"cache: {cache!r} is not allowed with ring x Ulysses {degrees.context}; expected none "
                         "(the ranks splitting the tokens could decide differently), or --cfg-parallel alone")


def start_ranks(args: argparse.Namespace, degrees: Degrees | None) -> RankGroup | None:
    """Join the run as one rank (``None`` for one process); ranks other than 0 keep their logs to errors."""
    if degrees is None:
        return None
    group = RankGroup.start(degrees, args.device, args.rank_timeout)
    quiet_rank(group)
    if not group.is_main:
        args.no_progress = True
    return group


def quiet_rank(group: RankGroup) -> None:
    """In a rank process (ours: started for this run): no per-rank library chatter; ranks other
    than 0 log errors only, so the output reads like one process's."""
    for name in _CHATTY_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    # diffusers' context-parallel gather calls a torch collective that torch has renamed; once per rank.
    warnings.filterwarnings("ignore", message=r".*all_gather_tensor. is deprecated", category=FutureWarning)
    if not group.is_main:
        for name in ("pusa", "diffusers", "transformers"):
            logging.getLogger(name).setLevel(logging.ERROR)


def parallel_service_options(args: argparse.Namespace) -> dict | None:
    """``pusa serve --nproc N``: the worker group's degrees and timeout (``None`` for one process),
    checked against the model's heads before the server starts (InputError, a ValueError: exit 2).
    Degrees left open assume guidance (the settings' default cfg); a job without it runs its one
    branch on both halves."""
    from pusa.loading.layout import detect_layout
    from pusa.settings import GenerationSettings

    if (args.nproc or 1) == 1 and all(d in (None, 1) for d in (args.ulysses_degree, args.ring_degree,
                                                                args.cfg_parallel)):
        return None
    if launched_by_torchrun():
        raise InputError("nproc: pusa serve starts its own ranks; run it without torchrun")
    if args.rank_timeout <= 0:
        raise InputError(f"rank-timeout: {args.rank_timeout:g} is not allowed; expected seconds above 0")
    if args.offload != "none":
        raise InputError(f"offload: {args.offload!r} is not allowed with several ranks; expected none")
    from pusa.cli_options import resolve_model_dir

    family = detect_layout(resolve_model_dir(args.model)).family
    degrees = resolve_degrees(args.nproc or 1, family.num_heads, float(GenerationSettings.model_fields["cfg"].default),
                              ulysses=args.ulysses_degree, ring=args.ring_degree, cfg_parallel=args.cfg_parallel,
                              ring_supported=ring_supported(_device_type(args.device)))
    check_speed_options(args, degrees)
    return {"degrees": degrees.__dict__, "timeout": args.rank_timeout}
