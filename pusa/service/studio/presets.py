"""The speed preset of each tab (issue 11: the 4-step preset from the studio).

The model decides which presets a job may choose (a preset that needs a distillation LoRA only when
one was loaded), so the dropdown shows only when there is a choice. Steps and CFG are sent with
every job, so choosing a preset also sets them to its values (the user may change them after);
when the server was started with a preset, the page starts on it once the model has loaded.
"""

from __future__ import annotations

from typing import Any

import gradio as gr

from pusa.service.i18n import say
from pusa.service.jobs import JobService
from pusa.service.studio.render import T
from pusa.settings import GenerationSettings
from pusa.speed.names import PRESET_NAMES
from pusa.speed.presets import get_preset

_PLAIN = {"steps": GenerationSettings.model_fields["steps"].default, "cfg": GenerationSettings.model_fields["cfg"].default}


def preset_values(name: str) -> tuple[int, float]:
    """(steps, cfg) a job on preset ``name`` starts from."""
    values = {**_PLAIN, **get_preset(name).settings}
    return int(values["steps"]), float(values["cfg"])


def preset_choices(names: list[str], lang: str) -> list[tuple[str, str]]:
    """(label in ``lang``, preset name) pairs: the handlers and the job get the name."""
    return [(say(f"preset_{name}", lang), name) for name in names]


def build_preset(tab: Any) -> None:
    """The dropdown (hidden until the loaded model offers more than one preset)."""
    tab.inputs["preset"] = gr.Dropdown(preset_choices(list(PRESET_NAMES), "en"), value="none", label=T("preset"), info=T("help_preset"),
                                       visible=False, elem_id=f"{tab.task}-preset")


def wire_preset(tab: Any) -> None:
    """A preset the user picks sets Steps and CFG to its values (a job filled in later keeps its own)."""

    def picked(name: str) -> tuple[Any, Any]:
        steps, cfg = preset_values(name if name in PRESET_NAMES else "none")
        return gr.update(value=steps), gr.update(value=cfg)

    tab.inputs["preset"].input(picked, tab.inputs["preset"], [tab.inputs["steps"], tab.inputs["cfg"]], queue=False)


def preset_outputs(tabs: list[Any]) -> list[Any]:
    return [c for t in tabs for c in (t.inputs["preset"], t.inputs["steps"], t.inputs["cfg"])]


def preset_updates(service: JobService, tabs: list[Any], lang: str = "en") -> list[Any]:
    """Updates for :func:`preset_outputs` from the page's model tick: nothing until the model is ready
    (the tick stops once it has settled, so the server's preset is put in place once per page load)."""
    if not service.model_ready:
        return [gr.update() for _ in range(3 * len(tabs))]
    presets, default = service.model_presets
    ups: list[Any] = []
    for _ in tabs:
        ups.append(gr.update(choices=preset_choices(presets, lang), value=default, visible=len(presets) > 1))
        if default != "none":  # steps and cfg of a server started with a preset
            steps, cfg = preset_values(default)
            ups += [gr.update(value=steps), gr.update(value=cfg)]
        else:
            ups += [gr.update(), gr.update()]
    return ups
