"""Every settings field against wrong JSON types: always a SettingsError naming the field, never a
crash, never a silent coercion, never the whole (possibly huge) value echoed back."""

import math

import pytest

from pusa.errors import SettingsError
from pusa.settings import GenerationSettings

BASE = {"prompt": "a cat"}
WRONG = [None, True, False, [], [1, 2], {"a": 1}, math.nan, math.inf, 10**30, -(10**30), "x" * 5000, "abc", 1.5]
FIELDS = [name for name in GenerationSettings.model_fields if name != "prompt"] + ["prompt", "size"]
OPTIONAL_NONE = {"lora_alpha_low", "cond_positions", "noise_multipliers", "width", "height", "frames", "fps", "seed",
                 "size", "prompts", "window", "overlap", "overlap_multipliers", "extend",
                 "preset"}  # null: "not given"


def _accepted(field, value) -> bool:
    """The few wrong-looking values that are legitimate for a field."""
    if value is None and field in OPTIONAL_NONE:
        return True
    if field in ("prompt", "negative_prompt") and isinstance(value, str) and len(value) <= 4000:
        return True
    if field == "negative_prompt" and value == "x" * 5000:
        return False
    if field in ("cond_positions",) and value in ([1, 2],):
        return True
    if field in ("noise_multipliers", "overlap_multipliers", "prompts") and value == []:
        return True
    if field == "color_match" and isinstance(value, bool):
        return True
    if field == "cond_positions" and value == []:
        return True
    if field in ("lora_alpha", "lora_alpha_low", "extra_lora_scale") and value in (1.5,):
        return True
    if field in ("cfg", "shift") and value in (1.5,):
        return True
    return False


@pytest.mark.parametrize("field", FIELDS)
@pytest.mark.parametrize("value", WRONG, ids=lambda v: type(v).__name__ + (repr(v)[:10] if not isinstance(v, str)
                                                                          else str(len(v))))
def test_wrong_types_name_the_field(field, value):
    if _accepted(field, value):
        GenerationSettings.parse({**BASE, field: value})
        return
    with pytest.raises(SettingsError) as info:
        GenerationSettings.parse({**BASE, field: value})
    fields = info.value.fields
    assert fields and fields[0] in (field, "width", "height") if field == "size" else fields[0] == field
    assert len(str(info.value)) < 600  # a 5000-character value is cut to an excerpt


@pytest.mark.parametrize("data,field,text", [
    ({"steps": True}, "steps", "got a boolean"),
    ({"steps": 10.5}, "steps", "fractional part"),
    ({"size": [64.9, 64.9]}, "size", "two whole numbers"),
    ({"size": [None, None]}, "size", "is not a size"),
    ({"size": [[1], [2]]}, "size", "is not a size"),
    ({"size": {"w": 64}}, "size", "is not a size"),
    ({"size": "64x48", "width": 64}, "size", "either size or width"),
    ({"cond_positions": [0, True]}, "cond_positions", "got a boolean"),
    ({"noise_multipliers": [0.2, "a"]}, "noise_multipliers", "expected a number"),
    ({"noise_multipliers": [-0.1]}, "noise_multipliers", "outside the allowed range 0 to 1"),
    ({"seed": "12"}, "seed", "expected a whole number"),
    ({"prompt": "p" * 100_000}, "prompt", "is too long (100000); the limit is 4000"),
])
def test_no_silent_coercion(data, field, text):
    with pytest.raises(SettingsError) as info:
        GenerationSettings.parse({**BASE, **data})
    assert info.value.fields[0] == field and text in str(info.value)
    assert len(str(info.value)) < 600


def test_integral_floats_from_json_clients_are_whole_numbers():
    s = GenerationSettings.parse({**BASE, "steps": 10.0, "size": [64, 48], "frames": 9.0})
    assert (s.steps, s.width, s.height, s.frames) == (10, 64, 48, 9) and isinstance(s.steps, int)


def test_unknown_field_name_is_cut():
    with pytest.raises(SettingsError) as info:
        GenerationSettings.parse({**BASE, "z" * 10_000: 1})
    assert len(info.value.fields[0]) < 60 and "unknown setting" in str(info.value)
