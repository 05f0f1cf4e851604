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
from pusa.service.studio.inputs import InputFiles
from pusa.service.studio.render import T, timeline_html
from pusa.service.studio.values import optional_int, whole
from pusa.settings import GenerationSettings, latent_frames
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
    model_frames: Callable[[], int]

    def frames_of(self, frames: Any) -> int:
        """The frame count the form means: the typed one when valid (4k+1), else the model's default."""
        f = optional_int(frames)
        return f if isinstance(f, int) and f >= 1 and (f - 1) % 4 == 0 else self.model_frames()

    # ------------------------------------------------------------------ the three directions of sync

    def on_images(self, *vals: Any) -> list[Any]:
        """An image added or removed: spread the filled slots evenly (first..last latent slot)."""
        images, frames = vals[:MAX_KEYFRAMES], vals[MAX_KEYFRAMES]
        mvals = vals[MAX_KEYFRAMES + 1:]
        filled = [i for i, im in enumerate(images) if im]
        spread = evenly_spaced(len(filled), latent_frames(self.frames_of(frames)))
        pos_updates: list[Any] = [None] * MAX_KEYFRAMES
        for k, i in enumerate(filled):
            pos_updates[i] = spread[k]
        ptxt = ",".join(str(p) for p in spread)
        mtxt = ",".join(f"{float(mvals[i]):g}" for i in filled)
        return [*pos_updates, ptxt, mtxt, timeline_html(ptxt, mtxt, self.frames_of(frames))]

    def on_slot_edit(self, *vals: Any) -> list[Any]:
        """A position or multiplier typed next to an image: rewrite the two text fields."""
        images = vals[:MAX_KEYFRAMES]
        pvals = vals[MAX_KEYFRAMES:2 * MAX_KEYFRAMES]
        mvals = vals[2 * MAX_KEYFRAMES:3 * MAX_KEYFRAMES]
        frames = vals[-1]
        filled = [i for i, im in enumerate(images) if im]
        ptxt = ",".join("" if pvals[i] is None else str(whole(pvals[i])) for i in filled)
        mtxt = ",".join(f"{float(mvals[i]):g}" for i in filled)
        return [ptxt, mtxt, timeline_html(ptxt, mtxt, self.frames_of(frames))]

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
        return [*pos_up, *mult_up, timeline_html(ptxt, mtxt, self.frames_of(frames))]

    def wire(self, frames: Any) -> None:
        """Attach the sync handlers; ``frames`` is the tab's frame-count box."""
        imgs, poss, mults = self.images, self.positions, self.multipliers
        ptext, mtext, timeline = self.positions_text, self.multipliers_text, self.timeline
        for im in imgs:
            im.change(self.on_images, [*imgs, frames, *mults], [*poss, ptext, mtext, timeline], queue=False)
        for c in (*poss, *mults):
            c.input(self.on_slot_edit, [*imgs, *poss, *mults, frames], [ptext, mtext, timeline], queue=False)
        for c in (ptext, mtext):  # .change: also after the slots rewrite the text (values agree, so no loop)
            c.change(self.on_text, [ptext, mtext, frames, *imgs], [*poss, *mults, timeline], queue=False)
        frames.change(lambda p, m, f: timeline_html(p, m, self.frames_of(f)), [ptext, mtext, frames], timeline,
                      queue=False)


def build_keyframe_slots(files: InputFiles, errors: dict[str, Any], err_box: Callable[[str], Any],
                         model_frames: Callable[[], int]) -> KeyframeSlots:
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
    ptext = gr.Textbox("", label=T("cond_positions"), info=T("help_cond_positions"), placeholder="0,20",
                       elem_id="keyframes-cond_positions")
    errors["cond_positions"] = err_box("cond_positions")
    mtext = gr.Textbox("", label=T("noise_multipliers"), info=T("help_noise_multipliers"), placeholder="0.2,0.5",
                       elem_id="keyframes-noise_multipliers")
    errors["noise_multipliers"] = err_box("noise_multipliers")
    gr.Markdown(f"**{T('timeline')}**")
    timeline = gr.HTML(timeline_html("", "", model_frames()), elem_id="keyframes-timeline")

    def show_more(n: int) -> list[Any]:
        n = min(n + 1, MAX_KEYFRAMES)
        return [n, *[gr.update(visible=i < n) for i in range(MAX_KEYFRAMES)]]

    add.click(show_more, slots_visible, [slots_visible, *columns], queue=False)
    return KeyframeSlots(imgs, poss, mults, ptext, mtext, timeline, model_frames)
