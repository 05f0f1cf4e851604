"""A contact sheet of real pusa-tiny outputs (README, docs/images/pusa_tiny_contact_sheet.png).

Every row is one request through the real engine (``PusaPipeline.generate``) with the bundled model:
the input picture(s) first, then frames 0, 8, 16, 24 and 32 of the output, each scaled 3x with
nearest-neighbour so the 64 px frames stay honest. The inputs are pictures the model never saw in
training (held-out kinds of ``pusa.training.scenes``: the studio's sunrise example, a photo-like
navy sky + green ground + red ball, a smooth natural-like field) plus the studio's first
text-to-video example.

Run: ``python -m pusa.training.contact_sheet docs/images/pusa_tiny_contact_sheet.png [--model DIR]``
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

FRAMES_SHOWN = (0, 8, 16, 24, 32)
SCALE = 3
LABEL_W = 230


def _rows(width: int, height: int, frames: int) -> list[dict]:
    from pusa.training.scenes import held_out_clip

    rng = np.random.default_rng(5)
    studio = held_out_clip("studio", 0, rng, width, height, frames)
    studio_end = held_out_clip("studio", 1, rng, width, height, frames)
    photo = held_out_clip("photo", 0, rng, width, height, frames)
    field = held_out_clip("fields", 0, rng, width, height, frames)
    return [
        {"label": "i2v  studio sunrise\n" + studio.caption, "task": "i2v", "images": [studio.frames[0]],
         "prompt": studio.caption},
        {"label": "i2v  navy sky, green\nground, red ball\n" + photo.caption, "task": "i2v",
         "images": [photo.frames[0]], "prompt": photo.caption},
        {"label": "i2v  unseen smooth field\n" + field.caption, "task": "i2v", "images": [field.frames[0]],
         "prompt": field.caption},
        {"label": "keyframes  sunrise\nstart -> end", "task": "keyframes",
         "images": [studio.frames[0], studio_end.frames[0]], "prompt": "a large yellow circle moving up slow"},
        {"label": "t2v (the studio's example)\na large green circle moving\nright fast", "task": "t2v",
         "images": [], "prompt": "a large green circle moving right fast"},
    ]


def render(model: str | None, out: Path, seed: int = 0) -> Path:
    """Generate every row and write the sheet as PNG; returns ``out``."""
    from pusa.bundled import default_model_dir
    from pusa.pipeline import PusaPipeline
    from pusa.settings import GenerationSettings

    pipe = PusaPipeline.from_pretrained(model or default_model_dir(), device="cpu")
    d = pipe.defaults
    rows = _rows(d.width, d.height, d.frames)
    cell_w, cell_h = d.width * SCALE, d.height * SCALE
    n_inputs = max(len(r["images"]) for r in rows)
    sheet = Image.new("RGB", (LABEL_W + (n_inputs + len(FRAMES_SHOWN)) * (cell_w + 4), len(rows) * (cell_h + 4) + 24),
                      (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    header = ["input"] * n_inputs + [f"frame {t}" for t in FRAMES_SHOWN]
    for j, text in enumerate(header):
        draw.text((LABEL_W + j * (cell_w + 4) + 4, 6), text, fill=(0, 0, 0))
    for i, row in enumerate(rows):
        fields = {"prompt": row["prompt"], "task": row["task"], "steps": 10, "seed": seed}
        if row["task"] == "i2v":
            fields.update(cond_positions=[0], noise_multipliers=[0.0])
        images = [Image.fromarray(im) for im in row["images"]] or None
        frames = pipe.generate(GenerationSettings.parse(fields), images=images).frames
        y = 24 + i * (cell_h + 4)
        draw.multiline_text((6, y + 6), row["label"], fill=(0, 0, 0))
        cells = list(row["images"]) + [None] * (n_inputs - len(row["images"])) + [frames[t] for t in FRAMES_SHOWN]
        for j, cell in enumerate(cells):
            if cell is not None:
                sheet.paste(Image.fromarray(cell).resize((cell_w, cell_h), Image.Resampling.NEAREST),
                            (LABEL_W + j * (cell_w + 4), y))
    out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out, format="PNG", optimize=True)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Render a contact sheet of real pusa-tiny outputs.")
    p.add_argument("out")
    p.add_argument("--model", help="model folder (default: the bundled pusa-tiny)")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    render(a.model, Path(a.out), a.seed)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
