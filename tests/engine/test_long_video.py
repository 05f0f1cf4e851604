"""Long video: chained windows, anchors on the whole timeline, a prompt per window, extension.

The tiny test model's native window is 9 frames (3 latent frames); the default overlap is 1.
"""

import numpy as np
import pytest
import torch

from pusa.errors import GenerationCancelled, SettingsError
from pusa.long_video import generate_video
from pusa.media import fit_image, pixels, read_video_frames, save_video, video_info
from pusa.settings import GenerationSettings

from .helpers import gradient_image, moving_square_video

FAST = {"steps": 2, "seed": 3, "size": "32x32", "cfg": 1.0}


def _s(**kw):
    return GenerationSettings.parse({"prompt": "a red square moves right", **FAST, **kw})


@pytest.fixture
def windows_seen(tiny_pipe, monkeypatch):
    """Record every window's request and denoised latents as the chain runs."""
    seen = []
    prepare, denoise = tiny_pipe.prepare, tiny_pipe.denoise

    def spy_prepare(s, *a, **kw):
        prepared = prepare(s, *a, **kw)
        seen.append({"prompt": s.prompt, "anchors": dict(kw.get("anchors") or {})})
        return prepared

    def spy_denoise(prepared, noise, *a, **kw):
        latents, model = denoise(prepared, noise, *a, **kw)
        seen[-1]["latents"] = latents.clone()
        return latents, model

    monkeypatch.setattr(tiny_pipe, "prepare", spy_prepare)
    monkeypatch.setattr(tiny_pipe, "denoise", spy_denoise)
    return seen


def test_native_length_is_exactly_the_one_window_path(tiny_pipe):
    one = tiny_pipe.generate(_s(frames=9), return_latents=True)
    via = generate_video(tiny_pipe, _s(frames=9))
    assert np.array_equal(one.frames, via.all_frames())
    assert via.windows == [{"index": 0, "latent_range": [0, 2], "overlap": 0, "pixel_range": [0, 8],
                            "prompt": "a red square moves right"}]


@pytest.mark.parametrize("frames,windows", [(13, 2), (17, 2), (25, 3)])
def test_exact_frame_counts_and_a_contiguous_plan(tiny_pipe, frames, windows):
    result = generate_video(tiny_pipe, _s(frames=frames))
    assert result.all_frames().shape == (frames, 32, 32, 3)
    plan = result.windows
    assert len(plan) == windows and plan[0]["pixel_range"][0] == 0 and plan[-1]["pixel_range"][1] == frames - 1
    for a, b in zip(plan, plan[1:]):
        assert b["latent_range"][0] == a["latent_range"][1] + 1 - b["overlap"]  # each overlaps the one before


def test_overlap_latents_are_handed_on_bit_exact(tiny_pipe, windows_seen):
    result = generate_video(tiny_pipe, _s(frames=25, overlap=2, window=4, color_match=False))
    assert len(windows_seen) == 3  # 7 latent frames: [0, 4), [2, 6), [4, 7)
    for prev, cur in zip(windows_seen, windows_seen[1:]):
        handed = prev["latents"][:, :, -2:]
        assert torch.equal(cur["anchors"][0].latent, handed[:, :, 0]) and cur["anchors"][0].multiplier == 0.0
        assert torch.equal(cur["latents"][:, :, :2], handed)  # multiplier 0: kept, never re-encoded
    assert torch.equal(result.latents[:, :, 2:4], windows_seen[0]["latents"][:, :, 2:4])


def test_anchors_land_in_their_windows_with_their_multipliers(tiny_pipe, windows_seen):
    images = [gradient_image(seed=i) for i in range(3)]
    s = _s(task="keyframes", frames=25, cond_positions="0,3,6", noise_multipliers="0,0,0", color_match=False)
    result = generate_video(tiny_pipe, s, images=images)
    for pos, img in zip((0, 3, 6), images):
        z = tiny_pipe.encode_pixels(pixels([fit_image(img, 32, 32)]))[:, :, 0]
        assert torch.equal(result.latents[:, :, pos], z), pos
    # windows [0, 3), [2, 5), [4, 7): position 3 is the second window's slot 1, 6 the last window's slot 2
    assert windows_seen[1]["anchors"][1].multiplier == 0.0 and 0 in windows_seen[1]["anchors"]  # + the overlap
    assert windows_seen[2]["anchors"][2].multiplier == 0.0


def test_each_window_gets_its_prompt_and_the_last_repeats(tiny_pipe, windows_seen):
    generate_video(tiny_pipe, _s(frames=25, prompt=["first", "second"]))
    assert [w["prompt"] for w in windows_seen] == ["first", "second", "second"]


def test_plan_errors_name_the_field(tiny_pipe):
    with pytest.raises(SettingsError, match="prompts: 4 prompts for 2 window"):
        tiny_pipe.validate(_s(frames=13, prompt=["a", "b", "c", "d"]))
    with pytest.raises(SettingsError, match="overlap: 3 latent frames is not less than the window"):
        tiny_pipe.validate(_s(frames=13, overlap=3))
    with pytest.raises(SettingsError, match="cond_positions: 7 is outside 0 to 6"):
        tiny_pipe.validate(_s(task="keyframes", frames=25, cond_positions="0,7"), n_images=2)
    with pytest.raises(SettingsError, match="frames"):
        _s(frames=2001)


def test_extension_keeps_the_input_pixels_and_adds_n_frames(tiny_pipe, tmp_path):
    src = moving_square_video(tmp_path / "in.mp4", frames=11, size=32)
    result = generate_video(tiny_pipe, _s(task="v2v", extend=8, overlap=2), video=src)
    out = save_video(result, tmp_path / "ext.mp4")
    assert video_info(out)["frames"] == 11 + 8
    frames = result_frames = read_video_frames(out)
    original = read_video_frames(src)
    assert len(result_frames) == 19
    meta = result.metadata()
    assert meta["frames"] == 19 and meta["windows"][0]["pixel_range"][0] == 11 - 5  # continued from its last 5 frames
    # the kept frames are the input's own pixels (copied, then through the same H.264 round trip as the input)
    kept = np.stack([np.asarray(f, dtype=np.int16) for f in frames[:11]])
    ref = np.stack([np.asarray(f, dtype=np.int16) for f in original])
    assert np.abs(kept - ref).mean() < 3.0


def test_extension_head_is_exactly_the_input_frames(tiny_pipe, tmp_path):
    src = moving_square_video(tmp_path / "in.mp4", frames=11, size=32)
    result = generate_video(tiny_pipe, _s(task="v2v", extend=4), video=src)
    frames = result.all_frames()
    assert frames.shape[0] == 15
    original = np.stack([np.asarray(f) for f in read_video_frames(src)])
    assert np.array_equal(frames[:11], original)  # copied, not re-decoded


def test_cancel_between_windows_writes_nothing(tiny_pipe, tmp_path):
    def cancel_in_second_window(info):
        if info.window == 2:
            raise GenerationCancelled("stop")

    with pytest.raises(GenerationCancelled):
        generate_video(tiny_pipe, _s(frames=25), callback=cancel_in_second_window)


def test_an_interrupted_long_write_leaves_no_file(tiny_pipe, tmp_path):
    def stop_while_decoding(info):
        if info.phase == "decode" and info.step == 3:
            raise KeyboardInterrupt  # what a kill during the write looks like to the writer

    result = generate_video(tiny_pipe, _s(frames=25), callback=stop_while_decoding)
    with pytest.raises(KeyboardInterrupt):
        save_video(result, tmp_path / "long.mp4")
    assert list(tmp_path.iterdir()) == []  # no final file, no .part left behind
