"""Shared fixtures: tiny models written once per session in each real on-disk layout."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def tiny_diffusers(tmp_path_factory) -> Path:
    from pusa.testing.layouts import write_tiny_diffusers

    return write_tiny_diffusers(tmp_path_factory.mktemp("models") / "tiny-diffusers", seed=0)


@pytest.fixture(scope="session")
def tiny_original(tmp_path_factory) -> Path:
    from pusa.testing.layouts import write_tiny_wan21_original

    return write_tiny_wan21_original(tmp_path_factory.mktemp("models") / "Wan2.1-T2V-tiny", seed=0)


@pytest.fixture(scope="session")
def tiny_wan22(tmp_path_factory) -> Path:
    from pusa.testing.layouts import write_tiny_wan22_original

    return write_tiny_wan22_original(tmp_path_factory.mktemp("models") / "Wan2.2-T2V-A14B-tiny", seed=0)


@pytest.fixture(scope="session")
def tiny_pipe(tiny_diffusers):
    from pusa.pipeline import PusaPipeline

    return PusaPipeline.from_pretrained(tiny_diffusers, device="cpu")
