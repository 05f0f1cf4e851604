"""The bundled default model, so every command works with no download.

``pusa/assets/pusa-tiny`` holds the trained tiny Pusa model when it is present in the package. If
it is not, a tiny *random* Wan model is built deterministically into the cache on first use: it
runs the full engine, but its output is noise, and the CLI and studio say so.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from pathlib import Path

log = logging.getLogger(__name__)

BUNDLED_DIR = Path(__file__).resolve().parent / "assets" / "pusa-tiny"
RANDOM_MODEL_VERSION = "tiny-random-v1"


def cache_dir() -> Path:
    """``$PUSA_CACHE`` or ``~/.cache/pusa``."""
    return Path(os.environ.get("PUSA_CACHE") or Path.home() / ".cache" / "pusa").expanduser()


def bundled_model_available() -> bool:
    return (BUNDLED_DIR / "model_index.json").is_file() and (BUNDLED_DIR / "transformer").is_dir()


def default_model_dir() -> Path:
    """The trained bundled model if shipped, else the deterministic random tiny model (built once)."""
    if bundled_model_available():
        return BUNDLED_DIR
    target = cache_dir() / RANDOM_MODEL_VERSION
    if (target / "pusa.json").is_file():
        return target
    from pusa.testing.layouts import write_tiny_diffusers

    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".building-", dir=target.parent))
    try:
        write_tiny_diffusers(tmp, seed=0)
        try:
            os.replace(tmp, target)
        except OSError:  # another process finished first
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info("built the tiny random default model in %s", target)
    return target


def default_model_label() -> str:
    meta = default_model_dir() / "pusa.json"
    label = json.loads(meta.read_text()).get("label", "") if meta.is_file() else ""
    return f"bundled default: {label}" if label else "bundled default"


def is_random_model(model_dir: str | Path) -> bool:
    """True for a model whose output is noise (the random stand-in), so edges can say so."""
    meta = Path(model_dir) / "pusa.json"
    return meta.is_file() and "noise" in json.loads(meta.read_text()).get("label", "")
