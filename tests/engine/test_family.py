"""The model-family seam: geometry comes from the component configs, not from constants.

A tiny model shaped like Wan2.2-TI2V-5B (48 latent channels, VAE stride 4x16x16) must load and
generate through the same engine as Wan2.1; the released families and the bundled model are
instances of the same spec.
"""

import pytest

from pusa.errors import SettingsError
from pusa.family import WAN21, WAN22_A14B, WAN22_TI2V_5B, family_from_configs
from pusa.loading.layout import detect_layout
from pusa.settings import GenerationSettings


@pytest.fixture(scope="module")
def tiny_5b(tmp_path_factory):
    from pusa.testing.layouts import write_tiny_diffusers

    return write_tiny_diffusers(tmp_path_factory.mktemp("models") / "ti2v-5b-tiny", seed=0, ti2v_5b=True)


def test_released_families_geometry():
    assert WAN21.latent_frames(81) == 21 and WAN21.pixel_frames(21) == 81
    assert WAN21.tokens_per_frame(480 // 8, 832 // 8) == 1560  # 32,760 tokens at 480p x 81 frames / 21
    assert WAN21.pixel_range(0) == (0, 0) and WAN21.pixel_range(20) == (77, 80)
    assert WAN21.frames_needed(3) == 13 and WAN21.size_multiple == 16
    assert WAN22_A14B.is_wan22 and WAN22_A14B.boundary == 0.875 and not WAN21.is_wan22
    assert WAN22_TI2V_5B.size_multiple == 32 and WAN22_TI2V_5B.latent_shape(1280, 704, 121) == (1, 48, 31, 44, 80)


def test_family_read_from_configs_not_constants():
    fam = family_from_configs({"z_dim": 48, "scale_factor_spatial": 16, "scale_factor_temporal": 4},
                              {"patch_size": [1, 2, 2], "num_attention_heads": 24})
    assert (fam.name, fam.latent_channels, fam.spatial_stride, fam.num_heads) == ("wan2.2-ti2v-5b", 48, 16, 24)
    odd = family_from_configs({"z_dim": 16, "scale_factor_temporal": 8}, {"patch_size": [1, 4, 4]},
                              meta={"frames": 17})
    assert odd.latent_frames(17) == 3 and odd.tokens_per_frame(8, 8) == 4 and odd.size_multiple == 32


def test_layouts_detect_their_family(tiny_diffusers, tiny_wan22, tiny_5b):
    from pusa.bundled import BUNDLED_DIR

    assert detect_layout(tiny_diffusers).family.latent_channels == 16
    wan22 = detect_layout(tiny_wan22).family
    assert wan22.is_wan22 and wan22.boundary == 0.875
    fam5b = detect_layout(tiny_5b).family
    assert (fam5b.latent_channels, fam5b.spatial_stride, fam5b.size_multiple) == (48, 16, 32)
    bundled = detect_layout(BUNDLED_DIR).family
    assert (bundled.native_frames, bundled.native_latent_frames, bundled.defaults.width) == (33, 9, 64)


def test_ti2v_5b_shaped_model_generates_t2v(tiny_5b):
    from pusa.pipeline import PusaPipeline

    pipe = PusaPipeline.from_pretrained(tiny_5b, device="cpu")
    assert pipe.family.latent_channels == 48 and pipe.family.spatial_stride == 16
    s = GenerationSettings.parse({"prompt": "a ball", "steps": 2, "seed": 3, "cfg": 1.0})
    result = pipe.generate(s, return_latents=True)
    assert result.latents.shape == (1, 48, 3, 4, 4)  # 9 frames -> 3 latent frames; 64 / 16 = 4
    assert result.frames.shape == (9, 64, 64, 3)
    assert result.frames.std() > 0
    with pytest.raises(SettingsError, match="width: 48 is not a multiple of 32"):
        pipe.generate(GenerationSettings.parse({"prompt": "a ball", "steps": 1, "size": "48x64"}))
