"""Sweeps: the same request at two or three values of one or two settings, compared side by side.

Pusa's users mostly ask how to set the noise multipliers and the LoRA alpha; a sweep answers it by
looking. This module is the one definition every edge uses (``pusa sweep``, ``POST /api/sweeps``,
the studio's sweep panel):

- :func:`parse_axes` reads the axes (``lora_alpha``, ``noise_multipliers``, ``steps``, ``seed``;
  2-3 values each, at most 2 axes, so at most 9 cells) with errors naming ``sweep.<axis>``;
- :func:`expand` turns a base request plus the axes into one request dict per cell, each checked
  by the caller's own settings check (the engine's rules, nothing of its own). Without a seed axis
  every cell gets the same seed (the base's, or one drawn here), so cells differ only by the axes;
- :func:`cell_label` / :func:`grid_shape` name and place the cells (rows: the first axis'
  values, columns: the second's);
- :func:`write_grid` tiles the cells' videos with their labels into one MP4, and
  :func:`write_table` writes the settings of each cell as CSV and JSON (both atomic).
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np

from pusa.atomic import atomic_file
from pusa.errors import FieldProblem, SettingsError

log = logging.getLogger(__name__)

# axis -> its short name in labels
AXES: dict[str, str] = {"lora_alpha": "alpha", "noise_multipliers": "mult", "steps": "steps", "seed": "seed"}
MIN_VALUES, MAX_VALUES, MAX_AXES = 2, 3, 2
SEED_RANGE = 2**32


@dataclass(frozen=True)
class Axis:
    """One swept setting and its values (a noise-multiplier value is a float for every condition or
    a tuple with one multiplier per condition)."""

    name: str
    values: tuple[Any, ...]


@dataclass
class Cell:
    """One request of a sweep: where it sits in the grid, what it varies, and its full request."""

    index: int
    row: int
    col: int
    values: dict[str, Any]
    label: str
    request: dict[str, Any] = field(default_factory=dict)


def _problem(axis: str, message: str) -> SettingsError:
    return SettingsError.single(f"sweep.{axis}" if axis else "sweep", message)


def _number(text: Any, axis: str, kind: type) -> Any:
    """One value of an axis: a number of the axis' kind (an int axis refuses 1.5, never rounds it)."""
    if isinstance(text, bool):
        raise _problem(axis, f"{text!r} is not a number")
    if isinstance(text, (int, float)):
        value = text
    else:
        try:
            value = float(str(text).strip())
        except ValueError:
            raise _problem(axis, f"{str(text)[:40]!r} is not a number") from None
    if isinstance(value, float) and not math.isfinite(value):
        raise _problem(axis, f"{value} is not a finite number")
    if kind is int:
        if float(value) != int(value):
            raise _problem(axis, f"{value} is not a whole number")
        return int(value)
    return float(value)


def _value(raw: Any, axis: str) -> Any:
    if axis == "noise_multipliers":
        if isinstance(raw, (list, tuple)) or (isinstance(raw, str) and "/" in raw):
            parts = raw if isinstance(raw, (list, tuple)) else raw.split("/")
            if not parts:
                raise _problem(axis, "an empty list of multipliers")
            return tuple(_number(p, axis, float) for p in parts)
        return _number(raw, axis, float)
    return _number(raw, axis, int if axis in ("steps", "seed") else float)


def parse_axis(name: str, values: Any) -> Axis:
    """One axis from a list (API, studio) or a text ``"1.0,1.4,2.0"`` (CLI); a per-condition multiplier
    value joins its multipliers with ``/`` (``"0.2/0.5,0.1/0.3"``) or is a list."""
    if name not in AXES:
        raise _problem("", f"{str(name)[:40]!r} cannot be swept; allowed: {', '.join(AXES)}")
    if isinstance(values, str):
        values = [v for v in values.replace(";", ",").split(",") if v.strip()]
    if not isinstance(values, (list, tuple)):
        raise _problem(name, f"give {MIN_VALUES} or {MAX_VALUES} values, e.g. {_example(name)}")
    parsed = tuple(_value(v, name) for v in values)
    if not MIN_VALUES <= len(parsed) <= MAX_VALUES:
        raise _problem(name, f"{len(parsed)} value(s); give {MIN_VALUES} or {MAX_VALUES}, e.g. {_example(name)}")
    dup = [v for i, v in enumerate(parsed) if v in parsed[:i]]
    if dup:
        raise _problem(name, f"{format_value(dup[0])} is given twice; each value once")
    return Axis(name, parsed)


def parse_axes(spec: Mapping[str, Any] | Sequence[str] | None) -> list[Axis]:
    """The axes of a sweep, in order: a mapping ``{axis: values}`` (API, studio) or CLI texts
    ``["lora_alpha=1.0,1.4,2.0", "noise_multipliers=0.1,0.3,0.5"]``."""
    if isinstance(spec, Mapping):
        items = list(spec.items())
    elif isinstance(spec, (list, tuple)):
        items = []
        for text in spec:
            name, sep, values = str(text).partition("=")
            if not sep:
                raise _problem("", f"{str(text)[:40]!r} is not AXIS=VALUES, e.g. lora_alpha={_example('lora_alpha')}")
            items.append((name.strip(), values))
    else:
        raise _problem("", f"give 1 or {MAX_AXES} axes as {{axis: values}}, axes: {', '.join(AXES)}")
    if not 1 <= len(items) <= MAX_AXES:
        raise _problem("", f"{len(items)} axes; give 1 or {MAX_AXES} of {', '.join(AXES)} (at most "
                           f"{MAX_VALUES ** MAX_AXES} cells)")
    names = [n for n, _ in items]
    if len(set(names)) != len(names):
        raise _problem(names[0], "given twice; each axis once")
    return [parse_axis(n, v) for n, v in items]


def _example(name: str) -> str:
    return {"lora_alpha": "1.0,1.4,2.0", "noise_multipliers": "0.1,0.3,0.5", "steps": "5,10,20",
            "seed": "1,2,3"}[name]


def format_value(value: Any) -> str:
    """A value as labels and file names show it: 1.4, 0.3, 10, or 0.2/0.5 per condition."""
    if isinstance(value, tuple):
        return "/".join(format_value(v) for v in value)
    if isinstance(value, float):
        return f"{value:.1f}" if value.is_integer() else f"{value:g}"
    return str(value)


def cell_label(values: Mapping[str, Any]) -> str:
    """``"alpha 1.4 · mult 0.3"``: each axis' short name and value, in axis order."""
    return " · ".join(f"{AXES[name]} {format_value(v)}" for name, v in values.items())


def grid_shape(axes: Sequence[Axis]) -> tuple[int, int]:
    """(rows, columns): one axis lies along a row; two: rows are the first axis, columns the second."""
    if len(axes) == 1:
        return 1, len(axes[0].values)
    return len(axes[0].values), len(axes[1].values)


def _multipliers(value: Any, conditions: int) -> list[float]:
    if isinstance(value, tuple):
        if len(value) != conditions:
            raise _problem("noise_multipliers", f"{format_value(value)} has {len(value)} multiplier(s) for "
                                                f"{conditions} condition(s); give one per condition or one number")
        return list(value)
    return [value] * conditions


def expand(base: Mapping[str, Any], axes: Sequence[Axis], *, conditions: int,
           check: Callable[[dict[str, Any]], Any] | None = None) -> list[Cell]:
    """One request per cell: ``base`` with the cell's axis values (the sweep replaces a setting it
    varies). ``conditions`` is how many conditions the resolved base request has (a single noise
    multiplier applies to each). ``check`` is the edge's settings check, run on every cell; a problem
    with a swept field is reported as ``sweep.<axis>``. Without a seed axis and without a seed in
    ``base`` one seed is drawn for all cells."""
    if any(a.name == "noise_multipliers" for a in axes) and conditions == 0:
        raise _problem("noise_multipliers", f"task {base.get('task', 't2v')} has no conditions to set a noise "
                                            f"multiplier for; sweep {', '.join(n for n in AXES if n != 'noise_multipliers')}")
    common = dict(base)
    if not any(a.name == "seed" for a in axes) and common.get("seed") is None:
        common["seed"] = secrets.randbelow(SEED_RANGE)
    rows, cols = grid_shape(axes)
    cells: list[Cell] = []
    for r in range(rows):
        for c in range(cols):
            picks = [axes[0].values[c if len(axes) == 1 else r]] + ([axes[1].values[c]] if len(axes) > 1 else [])
            values = {a.name: v for a, v in zip(axes, picks)}
            request = dict(common)
            for name, v in values.items():
                request[name] = _multipliers(v, conditions) if name == "noise_multipliers" else v
            cells.append(Cell(len(cells), r, c, values, cell_label(values), request))
    if check is not None:
        for cell in cells:
            _check_cell(cell, check)
    return cells


def _check_cell(cell: Cell, check: Callable[[dict[str, Any]], Any]) -> None:
    try:
        check(dict(cell.request))
    except SettingsError as e:
        raise SettingsError([FieldProblem(f"sweep.{p.field}", f"{format_value(cell.values[p.field])}: {p.message}")
                             if p.field in cell.values else p for p in e.problems]) from None


def describe(axes: Sequence[Axis], cells: Sequence[Cell]) -> dict[str, Any]:
    """JSON-able description of a sweep: its axes, grid shape and cells (values, labels)."""
    rows, cols = grid_shape(axes)
    return {"axes": [{"name": a.name, "values": [_json_value(v) for v in a.values]} for a in axes],
            "rows": rows, "cols": cols,
            "cells": [{"index": c.index, "row": c.row, "col": c.col, "label": c.label,
                       "values": {k: _json_value(v) for k, v in c.values.items()}} for c in cells]}


def _json_value(v: Any) -> Any:
    return list(v) if isinstance(v, tuple) else v


# ---------------------------------------------------------------------------------------------- table

TABLE_COLUMNS = ("cell", "row", "col", "label", "file", "seed", "steps", "lora_alpha", "noise_multipliers",
                 "cond_positions", "cfg", "width", "height", "frames")


def write_table(rows: Sequence[Mapping[str, Any]], csv_path: Path, json_path: Path,
                extra: Mapping[str, Any] | None = None) -> None:
    """The settings of each cell as CSV (one row per cell, the columns people compare) and JSON
    (every resolved setting under ``settings``). ``rows`` holds ``cell``, ``row``, ``col``, ``label``,
    ``file`` and ``settings`` (the resolved public settings)."""
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(TABLE_COLUMNS)
    for r in rows:
        s = r["settings"]
        flat = {**{k: r.get(k) for k in ("cell", "row", "col", "label", "file")},
                **{k: s.get(k) for k in TABLE_COLUMNS[5:]}}
        writer.writerow([" ".join(format_value(x) for x in v) if isinstance(v, list) else
                         ("" if v is None else v) for v in (flat[k] for k in TABLE_COLUMNS)])
    with atomic_file(csv_path) as tmp:
        tmp.write_text(buf.getvalue())
    with atomic_file(json_path) as tmp:
        tmp.write_text(json.dumps({**(extra or {}), "cells": list(rows)}, indent=2, sort_keys=True))


# ---------------------------------------------------------------------------------------------- grid

MIN_TILE_WIDTH, MAX_TILE_WIDTH = 192, 640  # tiles are scaled into this range: labels stay readable
GAP = 4


def _tile_size(width: int, height: int) -> tuple[int, int]:
    scale = min(max(width, MIN_TILE_WIDTH), MAX_TILE_WIDTH) / width
    return max(2, round(width * scale / 2) * 2), max(2, round(height * scale / 2) * 2)


def _label_strip(text: str, width: int) -> np.ndarray:
    """A dark strip with the label in white, drawn with PIL's scalable default font."""
    from PIL import Image, ImageDraw, ImageFont

    size = max(12, width // 16)
    font = ImageFont.load_default(size=size)
    while size > 8 and font.getlength(text) > width - 8:  # long labels shrink to fit the tile
        size -= 1
        font = ImageFont.load_default(size=size)
    height = (size + 8) // 2 * 2
    strip = Image.new("RGB", (width, height), (24, 24, 24))
    ImageDraw.Draw(strip).text((4, (height - size) // 2 - 1), text, fill=(255, 255, 255), font=font)
    return np.asarray(strip)


def iter_video(path: Path) -> Iterator[np.ndarray]:
    """The frames of an MP4 one at a time (uint8 H x W x 3): a grid holds one frame per cell in memory."""
    import av

    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            yield frame.to_ndarray(format="rgb24")


def grid_frames(videos: Sequence[Iterator[np.ndarray]], labels: Sequence[str], rows: int, cols: int
                ) -> Iterator[np.ndarray]:
    """Tile the videos (row-major, ``rows`` x ``cols``) frame by frame, each under its label; a video
    that ends first holds its last frame, so every cell plays for the whole grid."""
    from PIL import Image

    if len(videos) != len(labels) or len(videos) > rows * cols:
        raise ValueError(f"{len(videos)} videos and {len(labels)} labels for a {rows}x{cols} grid")
    last: list[np.ndarray | None] = [None] * len(videos)
    strips: list[np.ndarray] = []
    canvas: np.ndarray | None = None
    tile = (0, 0)
    while True:
        live = False
        for i, it in enumerate(videos):
            frame = next(it, None)
            if frame is not None:
                live = True
                last[i] = frame
        if not live:
            return
        if canvas is None:
            first = next(f for f in last if f is not None)
            tile = _tile_size(first.shape[1], first.shape[0])
            strips = [_label_strip(t, tile[0]) for t in labels]
            label_h = max(s.shape[0] for s in strips)
            cell_h = label_h + tile[1]
            canvas = np.full((rows * cell_h + (rows - 1) * GAP, cols * tile[0] + (cols - 1) * GAP, 3), 255,
                             np.uint8)
        out = canvas.copy()
        cell_h = (out.shape[0] - (rows - 1) * GAP) // rows
        for i, frame in enumerate(last):
            r, c = divmod(i, cols)
            y, x = r * (cell_h + GAP), c * (tile[0] + GAP)
            strip = strips[i]
            out[y:y + strip.shape[0], x:x + tile[0]] = strip
            if frame is not None:
                img = Image.fromarray(frame).resize(tile, Image.Resampling.LANCZOS)
                out[y + cell_h - tile[1]:y + cell_h, x:x + tile[0]] = np.asarray(img)
        yield out[None]


def write_grid(videos: Sequence[Path], labels: Sequence[str], rows: int, cols: int, path: Path, fps: int,
               metadata: dict[str, Any] | None = None, overwrite: bool = False) -> Path:
    """The cells' MP4s tiled into one MP4 that plays them in step (written atomically)."""
    from pusa.media import write_mp4

    return write_mp4(grid_frames([iter_video(p) for p in videos], labels, rows, cols), path, fps,
                     metadata=metadata, overwrite=overwrite)
