"""Fixtures of the training tests: a tiny synthetic dataset next to the shared tiny model."""

from __future__ import annotations

from pathlib import Path

import pytest

# Small clips keep every training step well under a second on 2 CPU cores.
CLIP_W, CLIP_H, CLIP_F = 32, 32, 5


@pytest.fixture(scope="session")
def shapes_data(tmp_path_factory) -> Path:
    from pusa.training.synthetic import make_dataset

    return make_dataset(tmp_path_factory.mktemp("data") / "shapes", 4, seed=3, width=CLIP_W, height=CLIP_H,
                        frames=CLIP_F)


@pytest.fixture
def train_config(tiny_diffusers, shapes_data, tmp_path):
    """A factory of small-but-real training configs on the shared tiny model."""
    from pusa.training.trainer import TrainConfig

    def make(**overrides) -> TrainConfig:
        base = dict(model=str(tiny_diffusers), data=str(shapes_data), output=str(tmp_path / "run"), steps=4,
                    batch_size=2, width=CLIP_W, height=CLIP_H, frames=CLIP_F, lora_rank=4, lora_alpha=8.0,
                    learning_rate=2e-3, warmup_steps=1, checkpoint_every=0, progress=False,
                    cache_dir=str(tmp_path / "cache"))
        base.update(overrides)
        return TrainConfig(**base)

    return make
