"""Training a light decoder (``python -m pusa.training.light_decoder``) on the bundled model's VAE."""

from __future__ import annotations

import json

import pytest
import torch

from pusa.light_decoder import decoder_width, load_decoder, narrow_vae
from pusa.loading.components import load_vae


def test_training_a_light_decoder_improves_on_its_pruned_start(tmp_path):
    """Its reconstruction of held-out clips improves over the pruned start, its encoder stays the model's,
    and the command writes a loadable folder with its report."""
    from pusa.bundled import default_model_dir
    from pusa.training import light_decoder as ld

    model_vae = load_vae(default_model_dir() / "vae", torch.float32).eval()
    start = narrow_vae(model_vae, 0.5)
    before = ld.quality_report(model_vae, start, seed=0, pictures=1, clips=1)
    assert ld.main(["--out", str(tmp_path / "light"), "--steps", "60", "2", "2", "--eval-pictures", "1"]) == 0
    report = json.loads((tmp_path / "light" / ld.REPORT_FILE).read_text())
    assert report["decoder_base_dim"] == {"model": 8, "light": 4}
    assert report["clips_33_frames"]["light"] > before["clips_33_frames"]["light"] + 1.0
    assert report["clips_33_frames"]["model"] == before["clips_33_frames"]["model"]
    loaded = load_decoder(tmp_path / "light", model_vae, torch.float32)
    assert decoder_width(loaded) == 4
    assert not (tmp_path / "light.partial").exists()
    with pytest.raises(SystemExit):
        ld.main(["--out", str(tmp_path / "x"), "--width", "1.5"])
