"""Reading raw values into settings fields, and turning validation errors into field problems.

Kept apart from :mod:`pusa.settings` so the settings model reads as the list of what decides a video.
Every message names the field and the allowed values and quotes at most a short excerpt of the value.
"""

from __future__ import annotations

import math
from typing import Any

from pydantic import ValidationError

from pusa.errors import FieldProblem, SettingsError

SIZE_PRESETS: dict[str, tuple[int, int]] = {"480p": (832, 480), "720p": (1280, 720)}
EXCERPT = 60


def excerpt(value: Any, limit: int = EXCERPT) -> str:
    """``repr(value)`` cut to ``limit`` characters: an error never echoes a whole (possibly huge) value."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 12] + f"... ({len(text)} chars)"


def parse_list(value: Any, kind: type, field: str) -> Any:
    """Accept "0,20", "0 20", [0, 20] or a single number; reject anything that is not exact."""
    if value is None:
        return None
    if isinstance(value, str):
        parts = [p for p in value.replace(";", ",").replace(" ", ",").split(",") if p.strip()]
        if not parts:
            return None
        out = []
        for p in parts:
            p = p.strip()
            try:
                if kind is int:
                    out.append(int(p))
                else:
                    out.append(float(p))
            except ValueError:
                noun = "an integer" if kind is int else "a number"
                raise ValueError(f"{excerpt(p)} in {excerpt(value)} is not {noun}; write a comma-separated list "
                                 f"such as {'0,20' if kind is int else '0.2,0.5'}") from None
        return out
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return [value]
    return value


def parse_size(value: Any) -> tuple[int, int]:
    """Parse ``"832x480"``, a preset name (``480p``, ``720p``) or a ``[w, h]`` pair of whole numbers."""
    if isinstance(value, (tuple, list)):
        if len(value) == 2 and all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            return int(value[0]), int(value[1])
        raise ValueError(f"{excerpt(value)} is not a size; write [WIDTH, HEIGHT] with two whole numbers, "
                         f"WIDTHxHEIGHT such as 832x480, or one of {', '.join(SIZE_PRESETS)}")
    if not isinstance(value, str):
        raise ValueError(f"{excerpt(value)} is not a size; write WIDTHxHEIGHT such as 832x480, or one of "
                         f"{', '.join(SIZE_PRESETS)}")
    text = value.strip().lower()
    if text in SIZE_PRESETS:
        return SIZE_PRESETS[text]
    parts = text.replace("*", "x").split("x")
    if len(parts) == 2 and all(p.strip().isdigit() for p in parts):
        return int(parts[0]), int(parts[1])
    raise ValueError(f"{excerpt(value)} is not a size; write WIDTHxHEIGHT such as 832x480, or one of "
                     f"{', '.join(SIZE_PRESETS)}")


def settings_error_from(err: ValidationError, model: Any) -> SettingsError:
    """Turn pydantic's errors into field problems that say the value and the allowed values."""
    problems = []
    for e in err.errors():
        field = ".".join(str(p) for p in e["loc"] if not isinstance(p, int)) or "settings"
        field = field.split(".")[0] if field.split(".")[0] in model.model_fields else field
        value = e.get("input")
        ctx = e.get("ctx") or {}
        kind = e["type"]
        if kind == "extra_forbidden":
            allowed = ", ".join(model.model_fields)
            field = excerpt(field, 40).strip("'")
            msg = f"unknown setting; allowed settings are: {allowed}"
        elif kind == "missing":
            msg = "is required"
        elif kind in ("greater_than_equal", "less_than_equal", "greater_than", "less_than"):
            info = model.model_fields.get(field)
            lo = hi = None
            for m in getattr(info, "metadata", []):
                lo = getattr(m, "ge", None) if getattr(m, "ge", None) is not None else lo
                lo = getattr(m, "gt", None) if getattr(m, "gt", None) is not None else lo
                hi = getattr(m, "le", None) if getattr(m, "le", None) is not None else hi
            rng = f"from {lo} to {hi}" if lo is not None and hi is not None else str(ctx)
            msg = f"{excerpt(value)} is not allowed; expected a value {rng}"
        elif kind == "literal_error":
            msg = f"{excerpt(value)} is not allowed; expected one of {ctx.get('expected')}"
        elif kind == "value_error":
            msg = str(ctx.get("error", e["msg"]))
        elif kind in ("int_type", "float_type", "string_type", "list_type", "bool_type"):
            want = {"int_type": "a whole number", "float_type": "a number", "string_type": "a string",
                    "list_type": "a list", "bool_type": "true or false"}[kind]
            if isinstance(value, bool):
                got = "a boolean"
            elif isinstance(value, float) and kind == "int_type" and math.isfinite(value):
                got = "a number with a fractional part"
            else:
                got = f"of type {type(value).__name__}"
            msg = f"{excerpt(value)} is not allowed: expected {want}, got {got}"
        elif kind in ("string_too_long", "too_long"):
            msg = f"is too long ({len(value) if hasattr(value, '__len__') else '?'}); the limit is " \
                  f"{ctx.get('max_length')}"
        else:
            msg = f"{excerpt(value)} is not allowed: {e['msg']}"
        problems.append(FieldProblem(field, msg))
    return SettingsError(problems)
