"""Every bad input gets its own message naming the field, the value and what is allowed."""

import pytest

from pusa.errors import SettingsError
from pusa.settings import GenerationSettings, ModelDefaults

BASE = {"prompt": "a cat"}

FIELD_ERRORS = [
    ({"steps": 0}, "steps", "expected a value from 1 to 50"),
    ({"steps": 51}, "steps", "from 1 to 50"),
    ({"steps": 10.5}, "steps", "fractional"),
    ({"lora_alpha": -0.1}, "lora_alpha", "from 0.0 to 5.0"),
    ({"lora_alpha": 5.5}, "lora_alpha", "from 0.0 to 5.0"),
    ({"noise_multipliers": "0.2,1.5"}, "noise_multipliers", "1.5 is outside the allowed range 0 to 1"),
    ({"noise_multipliers": "0.2,abc"}, "noise_multipliers", "'abc'"),
    ({"cond_positions": "0,x"}, "cond_positions", "'x' in '0,x' is not an integer"),
    ({"cond_positions": "0,2.5"}, "cond_positions", "is not an integer"),
    ({"width": 830}, "width", "not a multiple of 16 (nearest: 816 or 832)"),
    ({"height": 481}, "height", "not a multiple of 16"),
    ({"frames": 80}, "frames", "not of the form 4k+1 (nearest: 77 or 81)"),
    ({"frames": 0}, "frames", "from 1 to 1001"),
    ({"cfg": 0.5}, "cfg", "from 1.0 to 20.0"),
    ({"shift": 0}, "shift", "shift"),
    ({"fps": 0}, "fps", "from 1 to 120"),
    ({"seed": -1}, "seed", "from 0 to"),
    ({"task": "keyframes", "cond_positions": "-1,8"}, "cond_positions", "position -1 is below 0"),
    ({"task": "t2i"}, "task", "expected one of i2v, keyframes, v2v, t2v"),
    ({"fit": "stretch"}, "fit", "'crop' or 'letterbox'"),
    ({"prompt": "   "}, "prompt", "must not be blank"),
    ({"stpes": 10}, "stpes", "unknown setting; allowed settings are"),
    ({"size": "832by480"}, "size", "is not a size; write WIDTHxHEIGHT"),
]


@pytest.mark.parametrize("change,field,text", FIELD_ERRORS, ids=[e[1] + str(i) for i, e in enumerate(FIELD_ERRORS)])
def test_field_errors(change, field, text):
    with pytest.raises(SettingsError) as info:
        GenerationSettings.parse({**BASE, **change})
    assert info.value.fields[0] == field
    assert text in str(info.value)
    assert str(info.value).startswith(f"{field}: ")


def test_missing_prompt():
    with pytest.raises(SettingsError, match="prompt: is required"):
        GenerationSettings.parse({})


CROSS_ERRORS = [
    ({"task": "i2v"}, 0, False, "images", "i2v takes exactly 1 image (got 0)"),
    ({"task": "i2v"}, 2, False, "images", "i2v takes exactly 1 image (got 2)"),
    ({"task": "i2v", "cond_positions": "21"}, 1, False, "cond_positions", "21 is outside 0 to 20"),
    ({"task": "keyframes", "cond_positions": "0,20,10"}, 2, False, "cond_positions", "3 positions for 2 images"),
    ({"task": "keyframes", "cond_positions": "0,0"}, 2, False, "cond_positions", "0 appears more than once"),
    ({"task": "keyframes", "cond_positions": "0,20", "noise_multipliers": "0.2"}, 2, False, "noise_multipliers",
     "1 multipliers for 2 positions"),
    ({"task": "keyframes"}, 0, False, "images", "keyframes needs at least 1 image"),
    ({"task": "v2v"}, 0, True, "cond_positions", "v2v needs the latent positions"),
    ({"task": "v2v", "cond_positions": "0,1"}, 0, False, "video", "v2v needs an input video"),
    ({"task": "v2v", "cond_positions": "0"}, 1, True, "images", "v2v takes a video, not images"),
    ({"task": "t2v"}, 1, False, "images", "t2v takes no image"),
    ({"task": "t2v", "cond_positions": "0"}, 0, False, "cond_positions", "t2v has no conditions"),
    ({"lora_alpha_low": 1.0}, 0, False, "lora_alpha_low", "only applies to a Wan2.2"),
    ({"task": "keyframes", "cond_positions": "0,21"}, 2, False, "cond_positions", "21 is outside 0 to 20"),
    ({"task": "keyframes", "frames": 9}, 10, False, "images", "10 images but 9 frames have only 3 latent positions"),
]


@pytest.mark.parametrize("change,n_images,has_video,field,text", CROSS_ERRORS)
def test_cross_field_errors(change, n_images, has_video, field, text):
    s = GenerationSettings.parse({**BASE, **change})
    with pytest.raises(SettingsError) as info:
        s.resolve(ModelDefaults(832, 480, 81), n_images=n_images, has_video=has_video)
    assert field in info.value.fields
    assert text in str(info.value)


def test_position_string_forms_and_defaults():
    s = GenerationSettings.parse({**BASE, "task": "keyframes", "cond_positions": "0, 20", "noise_multipliers": "0.2 0.5"})
    assert s.cond_positions == [0, 20] and s.noise_multipliers == [0.2, 0.5]
    r = GenerationSettings.parse({**BASE, "task": "keyframes"}).resolve(ModelDefaults(832, 480, 81), n_images=3)
    assert r.cond_positions == [0, 10, 20] and r.noise_multipliers == [0.2, 0.2, 0.2]
    r = GenerationSettings.parse({**BASE, "task": "i2v"}).resolve(ModelDefaults(832, 480, 81), n_images=1)
    assert r.cond_positions == [0] and r.noise_multipliers == [0.2]
    r = GenerationSettings.parse({**BASE, "task": "v2v", "cond_positions": "0,1,2,3"}).resolve(has_video=True)
    assert r.noise_multipliers == [0.0] * 4


def test_resolve_fills_model_defaults_and_a_seed():
    r = GenerationSettings.parse(BASE).resolve(ModelDefaults(64, 48, 9))
    assert (r.width, r.height, r.frames) == (64, 48, 9)
    assert isinstance(r.seed, int)
    assert GenerationSettings.parse({**BASE, "size": "720p"}).width == 1280
    assert GenerationSettings.parse({**BASE, "seed": 7}).resolve().seed == 7


def test_defaults_are_the_seed_demo_ones():
    s = GenerationSettings.parse(BASE)
    assert (s.steps, s.lora_alpha, s.cfg, s.shift) == (10, 1.4, 5.0, 5.0)
    assert s.fps is None and s.resolve().fps == 16  # the model's fps (Wan2.1: 16)
    assert s.negative_prompt
