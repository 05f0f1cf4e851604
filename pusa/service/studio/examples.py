"""Preset inputs per tab (like the seed's example gallery), drawn procedurally: no downloads."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np
from PIL import Image, ImageDraw

from pusa.service.i18n import say
from pusa.service.studio.forms import TaskTab
from pusa.service.studio.render import T

# task -> (the tab inputs each column fills, rows); file names are inside the examples folder.
# Prompts in the caption grammar the bundled pusa-tiny was trained on (a size, a colour, a shape,
# a direction and a speed: its tokenizer knows no other words), which read as plain English to a
# real Wan model too; the pictures are the kinds its eval measures out of distribution (issue 13).
EXAMPLES: dict[str, tuple[tuple[str, ...], list[list[Any]]]] = {
    "i2v": (("image", "prompt", "noise_multiplier", "lora_alpha", "steps"),
            [["ball_on_grass.png", "a large red circle moving right slow", 0.2, 1.4, 10],
             ["sunrise_start.png", "a large yellow circle moving up slow", 0.2, 1.4, 10]]),
    "keyframes": (("image_0", "image_1", "prompt", "lora_alpha", "steps"),
                  [["sunrise_start.png", "sunrise_end.png", "a large yellow circle moving up slow", 1.4, 10]]),
    "v2v": (("video", "prompt", "cond_positions", "lora_alpha", "steps"),
            [["ball_rolling.mp4", "a large red circle moving right slow", "0,1", 1.4, 10]]),
    "t2v": (("prompt", "lora_alpha", "steps"),
            [["a large green circle moving right fast", 1.4, 10],
             ["a large blue circle moving right fast", 1.4, 10]]),
}
# the same rows with the prompts in Korean (UMT5, Wan's text encoder, reads Korean; the bundled
# model's word-level tokenizer does not, so on it these rows follow their pictures, not the words)
PROMPTS_KO: dict[str, list[str]] = {
    "i2v": ["큰 빨간 원이 천천히 오른쪽으로 움직인다", "큰 노란 원이 천천히 위로 움직인다"],
    "keyframes": ["큰 노란 원이 천천히 위로 움직인다"],
    "v2v": ["큰 빨간 원이 천천히 오른쪽으로 움직인다"],
    "t2v": ["큰 초록 원이 빠르게 오른쪽으로 움직인다", "큰 파란 원이 빠르게 오른쪽으로 움직인다"],
}
FILE_INPUTS = ("image", "image_0", "image_1", "video")
# input name -> the i18n key of its column header (keyframe columns add their number)
HEADER_KEYS = {"image": "image", "video": "video_in", "prompt": "prompt", "noise_multiplier": "noise_multiplier",
               "lora_alpha": "lora_alpha", "steps": "steps", "cond_positions": "cond_positions"}


def _header(name: str, lang: str) -> str:
    if name.startswith("image_"):
        return f"{say('keyframe', lang)} {int(name.split('_')[1]) + 1}"
    return say(HEADER_KEYS[name], lang)


def examples_id(task: str, lang: str) -> str:
    """The element id of a tab's examples in ``lang`` (CSS shows the page language's, :data:`EXAMPLES_CSS`)."""
    return f"{task}-examples" if lang == "en" else f"{task}-examples-{lang}"


def add_examples(tab: TaskTab, examples_dir: Path) -> None:
    """The example rows of ``tab``'s task, once per language; the page shows those of its language.

    Two sets rather than one re-labelled at run time: an example fills the inputs with the values
    it was built with, so the prompt a row shows must be the prompt it gives.
    """
    names, rows = EXAMPLES[tab.task]
    rows = [[str(examples_dir / v) if n in FILE_INPUTS else v for n, v in zip(names, row)] for row in rows]
    at = names.index("prompt")
    by_lang = {"en": rows, "ko": [[*r[:at], ko, *r[at + 1:]] for r, ko in zip(rows, PROMPTS_KO[tab.task])]}
    for lang, lang_rows in by_lang.items():
        ex = gr.Examples(lang_rows, [tab.inputs[n] for n in names], label=T("examples"),
                         elem_id=examples_id(tab.task, lang))
        ex.dataset.headers = [_header(n, lang) for n in names]


# each page shows the examples of its own language (html[lang] is set before drawing: studio.language)
EXAMPLES_CSS = "".join(f"html[lang=ko] #{examples_id(t, 'en')}, html:not([lang=ko]) #{examples_id(t, 'ko')} "
                       "{ display: none !important; }\n" for t in EXAMPLES)


def cached_copies(cache_dir: Path, examples_dir: Path) -> list[Path]:
    """Gradio's copies of the example files in its cache (made when the page is built), same bytes."""
    wanted: dict[int, list[bytes]] = {}
    for ex in examples_dir.glob("*"):
        if ex.is_file():
            wanted.setdefault(ex.stat().st_size, []).append(ex.read_bytes())
    copies = []
    for p in cache_dir.rglob("*"):
        if p.is_file() and not p.is_symlink() and p.stat().st_size in wanted and p.read_bytes() in wanted[p.stat().st_size]:
            copies.append(p)
    return copies


def _save_once(img: Image.Image, path: Path) -> None:
    if path.exists():
        return
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".png")
    os.close(fd)
    img.save(tmp, format="PNG")
    os.replace(tmp, path)


def _scene(sun_y: int, sky: tuple[int, int, int]) -> Image.Image:
    img = Image.new("RGB", (256, 256), sky)
    draw = ImageDraw.Draw(img)
    draw.ellipse((96, sun_y, 160, sun_y + 64), fill=(255, 200, 40))
    draw.rectangle((0, 180, 256, 256), fill=(30, 90, 160))
    return img


BALL_STEP = 3.6  # px per frame at 256 px: "slow" in the caption grammar (1.4% of the frame)


def _ball_scene(x: float) -> Image.Image:
    """Navy sky over green ground with a shaded red ball at ``x`` (issue 13's picture, 256 px)."""
    rows = np.arange(256, dtype=np.float32)[:, None, None]
    horizon = 154
    t_sky, t_gnd = np.clip(rows / horizon, 0, 1), np.clip((rows - horizon) / (256 - horizon), 0, 1)
    sky = np.array((20, 30, 90), np.float32) * (1 - t_sky) + np.array((40, 60, 130), np.float32) * t_sky
    ground = np.array((40, 140, 50), np.float32) * (1 - t_gnd) + np.array((30, 110, 40), np.float32) * t_gnd
    pixels = np.where(rows < horizon, sky, ground) * np.ones((1, 256, 1), np.float32)
    ys, xs = np.mgrid[0:256, 0:256].astype(np.float32)
    cy, r = 150.0, 36.0
    d = np.sqrt((xs - x) ** 2 + (ys - cy) ** 2)
    inside = np.clip(r - d + 0.5, 0, 1)[..., None]
    shade = np.clip(1.15 - 0.45 * np.sqrt((xs - x + 12) ** 2 + (ys - cy + 12) ** 2) / r, 0.55, 1.15)[..., None]
    pixels = pixels * (1 - inside) + np.array((220, 40, 40), np.float32) * shade * inside
    return Image.fromarray(np.clip(pixels, 0, 255).round().astype(np.uint8))


def write_examples(d: Path) -> None:
    """Small procedural inputs for the example rows (written once, atomically)."""
    d.mkdir(parents=True, exist_ok=True)
    _save_once(_scene(150, (250, 140, 90)), d / "sunrise_start.png")
    _save_once(_scene(40, (120, 180, 240)), d / "sunrise_end.png")
    _save_once(_scene(90, (200, 160, 120)), d / "sunrise_mid.png")
    _save_once(_ball_scene(70), d / "ball_on_grass.png")
    if not (d / "ball_rolling.mp4").exists():
        from pusa.media import write_mp4

        frames = np.stack([np.asarray(_ball_scene(70 + BALL_STEP * t)) for t in range(17)])
        write_mp4(frames, d / "ball_rolling.mp4", fps=16)
