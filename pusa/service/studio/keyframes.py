"""The multi-frame form: image slots with a position and a multiplier each, the typed fields, the timeline.

The per-image controls and the two typed fields (``cond_positions``, ``noise_multipliers``) show
the same settings, so each edit on one side rewrites the other; the timeline redraws after either.
Building and wiring are two steps because the frame count they read is built later on the page:
:func:`build_keyframe_slots` returns a :class:`KeyframeSlots`, and the page calls its ``wire``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import gradio as gr

from pusa.errors import SettingsError
from pusa.family import ModelFamily
from pusa.service.i18n import request_lang
from pusa.service.studio.inputs import InputFiles
from pusa.service.studio.length import frames_of
from pusa.service.studio.render import T, timeline_html
from pusa.service.studio.values import whole
from pusa.settings import GenerationSettings
from pusa.tasks import DEFAULT_IMAGE_MULTIPLIER, evenly_spaced

MAX_KEYFRAMES = 4


@dataclass
class KeyframeSlots:
    """The components of the multi-frame form, kept together so wiring them needs nothing hidden."""

    images: list[Any]
    positions: list[Any]
    multipliers: list[Any]
    positions_text: Any
    multipliers_text: Any
    timeline: Any
    family: Callable[[], ModelFamily]
    redraw: tuple[Any, ...] = ()  # (fn, inputs, output) that redraws the timeline (the page calls it on load)

    def draw(self, ptxt: str, mtxt: str, frames: Any, images: tuple[Any, ...] | list[Any], lang: str = "en") -> str:
        """The timeline on the loaded model's slots, each pin labelled by its keyframe's own number."""
        fam = self.family()
        return timeline_html(ptxt, mtxt, frames_of(frames, fam), fam, filled_labels(images), lang)

    # ------------------------------------------------------------------ the three directions of sync

    def on_images(self, *vals: Any) -> list[Any]:
        """An image added or removed: spread the filled slots evenly (first..last latent slot)."""
        images, frames = vals[:MAX_KEYFRAMES], vals[MAX_KEYFRAMES]
        mvals = vals[MAX_KEYFRAMES + 1:]
        filled = [i for i, im in enumerate(images) if im]
        fam = self.family()
        spread = evenly_spaced(len(filled), fam.latent_frames(frames_of(frames, fam)))
        pos_updates: list[Any] = [None] * MAX_KEYFRAMES
        for k, i in enumerate(filled):
            pos_updates[i] = spread[k]
        ptxt = ",".join(str(p) for p in spread)
        mtxt = ",".join(f"{float(mvals[i]):g}" for i in filled)
        return [*pos_updates, ptxt, mtxt, self.draw(ptxt, mtxt, frames, images)]

    def on_slot_edit(self, *vals: Any) -> list[Any]:
        """A position or multiplier typed next to an image: rewrite the two text fields."""
        images = vals[:MAX_KEYFRAMES]
        pvals = vals[MAX_KEYFRAMES:2 * MAX_KEYFRAMES]
        mvals = vals[2 * MAX_KEYFRAMES:3 * MAX_KEYFRAMES]
        frames = vals[-1]
        filled = [i for i, im in enumerate(images) if im]
        ptxt = ",".join("" if pvals[i] is None else str(whole(pvals[i])) for i in filled)
        mtxt = ",".join(f"{float(mvals[i]):g}" for i in filled)
        return [ptxt, mtxt, self.draw(ptxt, mtxt, frames, images)]

    def on_text(self, ptxt: str, mtxt: str, frames: Any, *images: Any) -> list[Any]:
        """The typed fields -> per-image controls (only when they parse and match the images)."""
        filled = [i for i, im in enumerate(images) if im]
        pos_up: list[Any] = [gr.update()] * MAX_KEYFRAMES
        mult_up: list[Any] = [gr.update()] * MAX_KEYFRAMES
        try:
            s = GenerationSettings.parse({"prompt": "x", "cond_positions": ptxt or None,
                                          "noise_multipliers": mtxt or None})
            if s.cond_positions and len(s.cond_positions) == len(filled):
                for k, i in enumerate(filled):
                    pos_up[i] = s.cond_positions[k]
            if s.noise_multipliers and len(s.noise_multipliers) == len(filled):
                for k, i in enumerate(filled):
                    mult_up[i] = s.noise_multipliers[k]
        except SettingsError:
            pass
        return [*pos_up, *mult_up, self.draw(ptxt, mtxt, frames, images)]

    def wire(self, frames: Any) -> None:
        """Attach the sync handlers; ``frames`` is the tab's frame-count box.

        The image values arrive unprocessed (``preprocess=False``): the handlers only ask whether a
        slot holds a file, and Gradio's own image preprocessing would turn an unreadable upload into
        a raw exception on the page (the upload check says it next to the field instead).
        """
        imgs, poss, mults = self.images, self.positions, self.multipliers
        ptext, mtext, timeline = self.positions_text, self.multipliers_text, self.timeline
        raw = {"queue": False, "preprocess": False}
        for im in imgs:
            im.change(self.on_images, [*imgs, frames, *mults], [*poss, ptext, mtext, timeline], **raw)
        for c in (*poss, *mults):
            c.input(self.on_slot_edit, [*imgs, *poss, *mults, frames], [ptext, mtext, timeline], **raw)
        for c in (ptext, mtext):  # .change: also after the slots rewrite the text (values agree, so no loop)
            c.change(self.on_text, [ptext, mtext, frames, *imgs], [*poss, *mults, timeline], **raw)

        def redraw(request: gr.Request, p: str, m: str, f: Any, *images: Any) -> str:
            return self.draw(p, m, f, images, request_lang(request))

        frames.change(redraw, [ptext, mtext, frames, *imgs], timeline, **raw)
        self.redraw = (redraw, [ptext, mtext, frames, *imgs], timeline)


def filled_labels(images: tuple[Any, ...] | list[Any]) -> list[int]:
    """The keyframe numbers (1-based slot numbers) of the slots that hold an image, in slot order."""
    return [i + 1 for i, im in enumerate(images) if im]


def build_keyframe_slots(files: InputFiles, errors: dict[str, Any], err_box: Callable[[str], Any],
                         family: Callable[[], ModelFamily]) -> KeyframeSlots:
    """Lay out 2..MAX_KEYFRAMES image slots (more on "+ Add image"), the typed fields and the timeline."""
    slots_visible = gr.State(2)
    columns, imgs, poss, mults = [], [], [], []
    with gr.Row():
        for i in range(MAX_KEYFRAMES):
            with gr.Column(visible=i < 2, min_width=160) as col:
                imgs.append(files.register(gr.Image(type="filepath", label=f"{T('keyframe')} {i + 1}", height=150,
                                                    sources=["upload", "clipboard"], elem_id=f"keyframes-image-{i}"),
                                           f"images[{i}]"))
                poss.append(gr.Number(None, label=T("position"), precision=0, minimum=0,
                                      elem_id=f"keyframes-pos-{i}"))
                mults.append(gr.Slider(0.0, 1.0, value=DEFAULT_IMAGE_MULTIPLIER, step=0.05,
                                       label=T("noise_multiplier"), elem_id=f"keyframes-mult-{i}"))
            columns.append(col)
    add = gr.Button(T("add_image"), size="sm", elem_id="keyframes-add")
    errors["images"] = err_box("images")
    fam = family()
    ptext = gr.Textbox("", label=T("cond_positions"), info=T("help_cond_positions"),
                       placeholder=positions_placeholder(fam), elem_id="keyframes-cond_positions")
    errors["cond_positions"] = err_box("cond_positions")
    mtext = gr.Textbox("", label=T("noise_multipliers"), info=T("help_noise_multipliers"), placeholder="0.2,0.5",
                       elem_id="keyframes-noise_multipliers")
    errors["noise_multipliers"] = err_box("noise_multipliers")
    gr.Markdown(f"**{T('timeline')}**")
    timeline = gr.HTML(timeline_html("", "", fam.defaults.frames, fam, []), elem_id="keyframes-timeline")

    def show_more(n: int) -> list[Any]:
        n = min(n + 1, MAX_KEYFRAMES)
        return [n, *[gr.update(visible=i < n) for i in range(MAX_KEYFRAMES)]]

    add.click(show_more, slots_visible, [slots_visible, *columns], queue=False)
    return KeyframeSlots(imgs, poss, mults, ptext, mtext, timeline, family)


def positions_placeholder(family: ModelFamily, frames: int | None = None) -> str:
    """First and last latent slot of the model's default video ("0,8" on the bundled model, "0,20" on Wan)."""
    last = family.latent_frames(frames or family.defaults.frames) - 1
    return f"0,{last}"

