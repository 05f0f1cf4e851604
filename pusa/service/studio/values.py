"""How the page's raw widget values become settings values (the engine checks them, not this).

Gradio numbers arrive as floats and optional numbers live in text boxes (a number box cannot be
empty: it shows and sends 0), so each value is normalised to what the user meant before the
settings check sees it; anything that is not a number is passed on as typed, and the check names
the field and what it expects.
"""

from __future__ import annotations

import re
from typing import Any

_INT = re.compile(r"[+-]?\d+")


def whole(value: Any) -> Any:
    """An integral float (10.0) as the int the user typed; anything else unchanged."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def optional_int(value: Any) -> Any:
    """None for an empty box ("use the model's default"), an int for a typed integer, else as typed."""
    if value is None:
        return None
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return None
        return int(text) if _INT.fullmatch(text) else text
    return whole(value)


def file_path(value: Any) -> Any:
    """The server path of a file input's raw value (events run with ``preprocess=False``).

    An image arrives as a file object (``{"path": ...}``), a video as ``{"video": {"path": ...}}``,
    a value filled by the server as a plain path; anything else is passed on for the check to refuse.
    """
    if isinstance(value, dict):
        if isinstance(value.get("video"), dict):
            return value["video"].get("path")
        return value.get("path")
    return value
