"""The studio's length, window-plan and timeline drawing on the loaded model's family (no browser)."""

from __future__ import annotations

import re

import pytest

from pusa.family import WAN21, ModelDefaults, ModelFamily
from pusa.service.studio.continuation import extension_frames
from pusa.service.studio.forms import collect, form_of, video_positions, TaskTab
from pusa.service.studio.keyframes import positions_placeholder
from pusa.service.studio.length import (Anchor, duration_text, frames_for_seconds, frames_of, long_settings,
                                        plan_html, prompt_lines)
from pusa.service.studio.render import timeline_html
from pusa.windows import default_overlap, plan_windows

BUNDLED = WAN21.with_defaults(width=64, height=64, frames=33, fps=16)  # pusa-tiny: 9 latent frames


def test_duration_and_seconds_follow_the_model() -> None:
    assert duration_text(33, 16) == "33 frames at 16 fps = 2.1 s"
    assert frames_for_seconds("2", 16, BUNDLED) == 33
    assert frames_for_seconds("20", 16, WAN21) == 321  # the 20-second video of the long-video issue
    assert frames_for_seconds("abc", 16, WAN21) is None and frames_for_seconds("-1", 16, WAN21) is None
    stride8 = ModelFamily(temporal_stride=8, defaults=ModelDefaults(frames=41))
    assert (frames_for_seconds("3", 16, stride8) - 1) % 8 == 0
    assert frames_of("", BUNDLED) == 33 and frames_of("34", BUNDLED) == 33 and frames_of("65", BUNDLED) == 65


def test_hints_come_from_the_model_family() -> None:
    assert positions_placeholder(BUNDLED) == "0,8" and positions_placeholder(WAN21) == "0,20"
    assert video_positions(WAN21) == "0,1,2,3" and video_positions(BUNDLED) == "0,1"
    assert extension_frames(BUNDLED) == 32 and extension_frames(WAN21) == 80
    assert 'data-slots="9"' in timeline_html("", "", 33, BUNDLED, [])


@pytest.mark.parametrize("frames,window,overlap", [(33, "", ""), (97, "", ""), (321, "", ""), (97, "5", "1"),
                                                   (1001, "", "")])
def test_plan_draws_the_engines_windows(frames: int, window: str, overlap: str) -> None:
    fam = BUNDLED if frames < 321 else WAN21
    prompts = ["dawn", "noon", "dusk"]
    html = plan_html(fam, frames, window, overlap, prompts, "x", [])
    w = int(window) if window else fam.native_latent_frames
    o = int(overlap) if overlap else default_overlap(w)
    plan = plan_windows(fam.latent_frames(frames), w, o, prompts)
    assert f'data-windows="{len(plan)}"' in html
    assert len(re.findall(r'class="pusa-win"', html)) == len(plan)
    last = plan[-1]
    assert f"frames {fam.pixel_range(last.start)[0]}–{frames - 1}" in html
    assert f"<i>{last.prompt}</i>" in html


def test_plan_shows_anchors_and_refuses_a_bad_overlap() -> None:
    html = plan_html(BUNDLED, 97, "", "", [], "one prompt", [Anchor("Keyframe 1", 0), Anchor("Keyframe 3", 24),
                                                                 Anchor("outside", 99)])
    assert html.count('class="pusa-anchor"') == 2 and "Keyframe 3: 24" in html
    bad = plan_html(BUNDLED, 97, "4", "4", [], "x", [])
    assert "pusa-bad" in bad and "less than the window" in bad


def test_timeline_labels_keyframes_by_their_slot_and_never_invents_one() -> None:
    # three positions for two images: the third says it has no image, and no "Keyframe 3" appears
    html = timeline_html("0,4,8", "", 33, BUNDLED, [1, 2])
    assert "Keyframe 3" not in html and "#3" not in html and "no image for it" in html
    # the middle of three images removed: the others keep their numbers 1 and 3
    html = timeline_html("0,8", "", 33, BUNDLED, [1, 3])
    assert "Keyframe 3 pins latent slot 8" in html and "Keyframe 2" not in html


def test_long_video_values_become_settings() -> None:
    assert prompt_lines("dawn\n\n  noon \ndusk\n") == ["dawn", "noon", "dusk"]
    assert long_settings({"prompts": "a\nb", "window": "5", "overlap": "", "overlap_multipliers": "0,0.1",
                          "color_match": False}) == {"prompts": ["a", "b"], "window": 5,
                                                      "overlap_multipliers": "0,0.1", "color_match": False}
    tab = TaskTab("t2v", form_of("t2v"))
    vals = {"prompt": "", "prompts": "dawn\nnoon\ndusk", "steps": 2.0, "lora_alpha": 1.4, "cfg": 1.0, "fps": "",
            "frames": "97", "window": "", "overlap": "", "overlap_multipliers": "", "color_match": True}
    raw, images, video = collect(tab, vals, None, False)  # type: ignore[arg-type]
    assert raw["prompt"] == "dawn" and raw["prompts"] == ["dawn", "noon", "dusk"] and raw["frames"] == 97
    assert "fps" not in raw and "window" not in raw and "color_match" not in raw
    v2v = TaskTab("v2v", form_of("v2v"))
    raw, _, _ = collect(v2v, {**vals, "prompt": "go on", "extend": "32", "cond_positions": "0,1",
                              "noise_multipliers": ""}, None, False)  # type: ignore[arg-type]
    assert raw["extend"] == 32 and raw["cond_positions"] == "0,1"
