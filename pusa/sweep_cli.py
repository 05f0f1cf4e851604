"""``pusa sweep TASK``: one request at two or three values of one or two settings, side by side.

The task's options are ``pusa generate``'s (the same registry builds both); ``--sweep AXIS=VALUES``
(once or twice) names what varies. Every input is checked, every cell's settings included, before
the model loads; the model then loads once and runs the cells in order. Written beside the grid
MP4 (``--output``, default ``outputs/sweep_<task>_<time>.mp4``): ``<name>.csv`` and ``<name>.json``
(the settings of each cell) and ``<name>_cells/`` with each cell's MP4 and sidecar.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path
from typing import Any

from pusa.cli_options import add_engine_options, engine_kwargs, resolve_model_dir
from pusa.errors import InputError
from pusa.sweep import AXES, MAX_AXES, Cell, describe, expand, format_value, grid_shape, parse_axes, write_grid, \
    write_table
from pusa.tasks import TASKS

log = logging.getLogger("pusa")

EXAMPLE = ('pusa sweep i2v --image start.png --prompt "the boat drifts" --seed 7 '
           '--sweep lora_alpha=1.0,1.4,2.0 --sweep noise_multipliers=0.1,0.3,0.5 --output sweeps/boat.mp4')


def add_sweep_parser(sub: argparse._SubParsersAction) -> None:
    """``pusa sweep <task>``: generate's options per task plus ``--sweep`` axes."""
    from pusa.cli import add_request_options

    sweep = sub.add_parser("sweep", help="compare 2-3 values of one or two settings in a labelled grid video",
                           description="Run one request at several values of lora_alpha, noise_multipliers, steps "
                                       "or seed; write each cell's video, a labelled grid MP4 and a table.",
                           epilog=f"example:\n  {EXAMPLE}", formatter_class=argparse.RawDescriptionHelpFormatter)
    tasks = sweep.add_subparsers(dest="task", required=True, metavar="TASK")
    for spec in TASKS.values():
        p = tasks.add_parser(spec.name, help=spec.summary, epilog=f"example:\n  {EXAMPLE}",
                             formatter_class=argparse.RawDescriptionHelpFormatter)
        g = add_request_options(p, spec)
        axes = [a for a in AXES if spec.conditioned or a != "noise_multipliers"]
        g.add_argument("--sweep", action="append", required=True, metavar="AXIS=VALUES",
                       help=f"an axis and 2-3 values, e.g. lora_alpha=1.0,1.4,2.0; at most {MAX_AXES} (rows: "
                            f"the first, columns: the second); axes: {', '.join(axes)}"
                            + ("; a multiplier per condition: noise_multipliers=0.2/0.5,0.1/0.3"
                               if spec.conditioned else ""))
        g.add_argument("--output", metavar="PATH.mp4", help="the grid video; the table and the cells go beside "
                                                            "it (default: outputs/sweep_<task>_<time>.mp4)")
        g.add_argument("--overwrite", action="store_true", help="replace existing outputs")
        g.add_argument("--no-progress", action="store_true", help="no progress bar")
        add_engine_options(p)
        p.set_defaults(handler=cmd_sweep)


def sweep_outputs(grid: Path) -> dict[str, Path]:
    """Where a sweep writes: the grid, its table (CSV and JSON) and the cells' folder."""
    return {"grid": grid, "csv": grid.with_suffix(".csv"), "json": grid.with_suffix(".json"),
            "cells": grid.with_name(f"{grid.stem}_cells")}


def _check_outputs(output: str | None, task: str, overwrite: bool) -> dict[str, Path]:
    grid = Path(output) if output else Path("outputs") / f"sweep_{task}_{time.strftime('%Y%m%d-%H%M%S')}.mp4"
    if grid.suffix.lower() != ".mp4":
        raise InputError(f"output: {grid.name} must end in .mp4 (the grid video)")
    paths = sweep_outputs(grid)
    if not overwrite:
        taken = [p for p in paths.values() if p.exists() and (not p.is_dir() or any(p.iterdir()))]
        if taken:
            raise InputError(f"output: {taken[0]} already exists; choose another name or pass --overwrite")
    from pusa.cli import check_output

    check_output(str(grid), True)  # a writable folder
    return paths


def _cell_file(cell: Cell) -> str:
    slug = "_".join(f"{AXES[k]}{format_value(v)}" for k, v in cell.values.items()).replace("/", "-")
    return f"cell{cell.index + 1}_{slug}.mp4"


def cmd_sweep(args: argparse.Namespace) -> int:
    """Check everything (axes, each cell's settings, inputs, outputs), load once, run every cell."""
    from pusa.cli import _Progress, _read_images, _read_video, settings_from_args
    from pusa.loading.layout import detect_layout
    from pusa.long_video import generate_video
    from pusa.media import save_video
    from pusa.pipeline import PusaPipeline
    from pusa.settings import GenerationSettings

    axes = parse_axes(args.sweep)
    base = settings_from_args(args)
    paths = _check_outputs(args.output, args.task, args.overwrite)
    layout = detect_layout(resolve_model_dir(args.model))
    images, video = getattr(args, "image", None), getattr(args, "video", None)

    def check(raw: dict[str, Any]) -> GenerationSettings:
        return GenerationSettings.parse(raw).resolve(layout.family, n_images=len(images or []),
                                                     has_video=video is not None,
                                                     max_pixel_frames=args.max_pixel_frames)

    resolved_base = check(base)
    cells = expand(base, axes, conditions=len(resolved_base.cond_positions or []), check=check)
    pil_images = _read_images(images)
    frames_in = _read_video(video, check(cells[0].request), layout.family)
    pipe = PusaPipeline.from_pretrained(resolve_model_dir(args.model), **engine_kwargs(args))
    rows: list[dict[str, Any]] = []
    files: list[Path] = []
    for cell in cells:
        print(f"cell {cell.index + 1}/{len(cells)}: {cell.label}", file=sys.stderr)
        progress = _Progress(not args.no_progress)
        try:
            result = generate_video(pipe, GenerationSettings.parse(cell.request), images=pil_images or None,
                                    video=frames_in, callback=progress)
            path = save_video(result, paths["cells"] / _cell_file(cell), overwrite=args.overwrite)
        finally:
            progress.close()
        files.append(path)
        rows.append({"cell": cell.index + 1, "row": cell.row + 1, "col": cell.col + 1, "label": cell.label,
                     "file": path.relative_to(paths["grid"].parent).as_posix(),
                     "settings": result.settings.to_public_dict()})
    n_rows, n_cols = grid_shape(axes)
    info = {**describe(axes, cells), "task": args.task, "grid": paths["grid"].name}
    write_grid(files, [c.label for c in cells], n_rows, n_cols, paths["grid"], result.fps,
               metadata={"sweep": info["axes"], "generator": "pusa"}, overwrite=args.overwrite)
    write_table(rows, paths["csv"], paths["json"], {k: v for k, v in info.items() if k != "cells"})
    print(f"seed: {rows[0]['settings']['seed']}" if "seed" not in {a.name for a in axes} else "seeds: "
          + ", ".join(str(r["settings"]["seed"]) for r in rows), file=sys.stderr)
    print(paths["grid"])
    return 0
