"""The bundled pusa-tiny model (``pusa/assets/pusa-tiny``): the default of every command.

It ships inside the package, so every command works with no download; a checkout or wheel without
it is incomplete, and the error says so instead of silently generating noise.
"""

from __future__ import annotations

from pathlib import Path

from pusa.errors import ModelLoadError

BUNDLED_DIR = Path(__file__).resolve().parent / "assets" / "pusa-tiny"


def default_model_dir() -> Path:
    """The bundled model's folder, checked to be complete enough to load."""
    if not (BUNDLED_DIR / "model_index.json").is_file() or not (BUNDLED_DIR / "transformer").is_dir():
        raise ModelLoadError(f"the bundled model is missing from this installation ({BUNDLED_DIR}); reinstall "
                             f"pusa-studio or pass --model with a model folder")
    return BUNDLED_DIR
