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

# task -> (the tab inputs each column fills, rows); file names are inside the examples folder
EXAMPLES: dict[str, tuple[tuple[str, ...], list[list[Any]]]] = {
    "i2v": (("image", "prompt", "noise_multiplier", "lora_alpha", "steps"),
            [["sunrise_start.png", "The sun rises over a calm sea, gentle waves", 0.2, 1.4, 10]]),
    "keyframes": (("image_0", "image_1", "prompt", "lora_alpha", "steps"),
                  [["sunrise_start.png", "sunrise_end.png",
                    "Time-lapse: the sun climbs from the horizon into a blue sky", 1.4, 10]]),
    "v2v": (("video", "prompt", "cond_positions", "lora_alpha", "steps"),
            [["waves.mp4", "Ocean waves roll in under a stormy sky", "0,1", 1.4, 10]]),
    "t2v": (("prompt", "lora_alpha", "steps"),
            [["A red fox runs through fresh snow in a pine forest, cinematic", 1.4, 10],
             ["A paper boat drifts down a rain-filled street, close-up", 1.4, 10]]),
}
# the same rows with the prompts in Korean (UMT5, Wan's text encoder, reads Korean): shown on the Korean page
PROMPTS_KO: dict[str, list[str]] = {
    "i2v": ["잔잔한 바다 위로 해가 떠오르고 부드러운 물결이 인다"],
    "keyframes": ["타임랩스: 해가 수평선에서 파란 하늘로 떠오른다"],
    "v2v": ["폭풍우 치는 하늘 아래 바다 물결이 밀려온다"],
    "t2v": ["붉은 여우가 소나무 숲의 새 눈밭을 달린다, 영화 같은 장면", "종이배가 빗물 고인 거리를 따라 떠내려간다, 클로즈업"],
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


def write_examples(d: Path) -> None:
    """Small procedural inputs for the example rows (written once, atomically)."""
    d.mkdir(parents=True, exist_ok=True)
    _save_once(_scene(150, (250, 140, 90)), d / "sunrise_start.png")
    _save_once(_scene(40, (120, 180, 240)), d / "sunrise_end.png")
    _save_once(_scene(90, (200, 160, 120)), d / "sunrise_mid.png")
    if not (d / "waves.mp4").exists():
        from pusa.media import write_mp4

        t = np.arange(17)[:, None, None]
        y = np.arange(128)[None, :, None]
        x = np.arange(128)[None, None, :]
        wave = (127 + 120 * np.sin((x + 6 * t) / 10.0 + y / 25.0)).astype(np.uint8)
        write_mp4(np.stack([wave // 3, wave // 2, wave], axis=-1), d / "waves.mp4", fps=8)
