"""Live previews: the sampler's clean estimate after each step, and a VAE-free RGB map fitted per model."""

import numpy as np
import torch
from PIL import Image

from pusa.media import pixels
from pusa.sampler import sample
from pusa.schedule import inference_sigmas


def test_each_step_reports_x0_as_x_minus_sigma_v():
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(1, 4, 3, 2, 2, generator=g)
    eps = torch.randn(1, 4, 3, 2, 2, generator=g)
    seen = []
    # the exact flow velocity of this x0/eps pair: every step's estimate must be x0 itself
    sample(lambda x, t, k: eps - x0, eps, inference_sigmas(4), torch.tensor([0.0, 0.5, 1.0]),
           cond=x0, callback=lambda st: seen.append(st.denoised))
    assert len(seen) == 4
    for est in seen:
        assert torch.allclose(est, x0, atol=1e-5)


def test_fitted_preview_shows_the_colour_of_a_solid_picture(tmp_path):
    from pusa.bundled import default_model_dir
    from pusa.pipeline import PusaPipeline

    pipe = PusaPipeline.from_pretrained(default_model_dir(), device="cpu")
    for channel, colour in enumerate([(230, 30, 30), (30, 210, 40), (30, 50, 230)]):
        z = pipe.encode_pixels(pixels([Image.new("RGB", (64, 64), colour)]))
        strip = pipe.preview_image(z)
        assert strip.dtype == np.uint8 and strip.shape == (8, 8, 3)
        mean = strip.reshape(-1, 3).astype(float).mean(0)
        assert int(np.argmax(mean)) == channel, (colour, mean)
    video = torch.zeros(1, 16, 20, 8, 8)
    assert pipe.preview_image(video).shape == (8, 8 * 8, 3)  # at most 8 frames side by side
