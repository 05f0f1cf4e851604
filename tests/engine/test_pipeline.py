"""Every task end to end through the real engine on a tiny model, down to an MP4 read back with PyAV."""

import numpy as np
import pytest
import torch
from PIL import Image

from pusa.errors import GenerationCancelled, InputError, MediaError
from pusa.media import save_video, video_info
from pusa.pipeline import PusaPipeline, latent_shape, seeded_noise
from pusa.settings import GenerationSettings

from .helpers import gradient_image, moving_square_video

FAST = {"steps": 2, "seed": 5}


def _settings(**kw):
    return GenerationSettings.parse({"prompt": "a red square moves right", **FAST, **kw})


@pytest.mark.parametrize("task", ["t2v", "i2v", "keyframes", "v2v"])
def test_every_task_writes_a_playable_mp4(task, tiny_pipe, tmp_path):
    kwargs, extra = {}, {}
    if task == "i2v":
        kwargs["images"] = [gradient_image()]
    elif task == "keyframes":
        kwargs["images"] = [gradient_image(seed=1), gradient_image(seed=2), gradient_image(seed=3)]
        extra = {"cond_positions": "0,1,2", "noise_multipliers": "0.2,0.5,0"}
    elif task == "v2v":
        kwargs["video"] = moving_square_video(tmp_path / "in.mp4", frames=13)
        extra = {"cond_positions": "0,1"}
    result = tiny_pipe.generate(_settings(task=task, fps=12, size="64x48", **extra), **kwargs)
    out = save_video(result, tmp_path / f"{task}.mp4")
    info = video_info(out)
    assert (info["frames"], info["width"], info["height"], info["fps"]) == (9, 64, 48, 12.0)
    meta = (tmp_path / f"{task}.json").read_text()
    assert f'"seed": {result.seed}' in meta and f'"task": "{task}"' in meta
    assert set(result.timings) >= {"text", "encode", "denoise", "decode", "total"}


def test_same_seed_same_video_and_seed_is_reported(tiny_pipe):
    a = tiny_pipe.generate(_settings(seed=123))
    b = tiny_pipe.generate(_settings(seed=123))
    c = tiny_pipe.generate(_settings(seed=124))
    assert a.seed == 123 and (a.frames == b.frames).all() and not (a.frames == c.frames).all()
    r = tiny_pipe.generate(_settings(seed=None))
    assert isinstance(r.seed, int) and r.settings.seed == r.seed


def test_noise_tensor_is_the_seed_convention(tiny_pipe):
    s = _settings(seed=77).resolve(tiny_pipe.defaults)
    noise = seeded_noise(latent_shape(s), 77)
    assert noise.dtype == torch.float32 and noise.shape == (1, 16, 3, 8, 8)
    a = tiny_pipe.generate(_settings(seed=77))
    b = tiny_pipe.generate(_settings(seed=1), noise=noise)
    assert (a.frames == b.frames).all()
    with pytest.raises(InputError, match=r"noise: shape \(1, 16, 3, 4, 4\) does not match"):
        tiny_pipe.generate(_settings(), noise=torch.zeros(1, 16, 3, 4, 4))


def test_multiplier_zero_keeps_the_encoded_image_exactly(tiny_pipe):
    from pusa.media import pixels
    from pusa.media import fit_image

    img = gradient_image()
    r = tiny_pipe.generate(_settings(task="i2v", noise_multipliers="0"), images=[img], return_latents=True)
    expected = tiny_pipe.encode_pixels(pixels([fit_image(img, 64, 64)]))
    assert torch.equal(r.latents[:, :, 0], expected[:, :, 0])
    moved = tiny_pipe.generate(_settings(task="i2v", noise_multipliers="0.5"), images=[img], return_latents=True)
    assert not torch.equal(moved.latents[:, :, 0], expected[:, :, 0])
    # the generated frames are not the condition
    assert not torch.equal(r.latents[:, :, 1], r.latents[:, :, 0])


def test_v2v_keeps_video_latents_and_checks_length(tiny_pipe, tmp_path):
    from pusa.media import pixels
    from pusa.media import fit_image, read_video_frames

    video = moving_square_video(tmp_path / "v.mp4", frames=9)
    r = tiny_pipe.generate(_settings(task="v2v", cond_positions="0,1", noise_multipliers="0,0"), video=video,
                           return_latents=True)
    z = tiny_pipe.encode_pixels(pixels([fit_image(f, 64, 64) for f in read_video_frames(video)]))
    assert torch.equal(r.latents[:, :, :2], z[:, :, :2])
    with pytest.raises(MediaError, match="video: position 3 needs at least 13 frames of the input video; it has 9"):
        tiny_pipe.generate(_settings(task="v2v", cond_positions="0,3", frames=17), video=video)


def test_cancel_stops_between_steps(tiny_pipe):
    steps = []

    def cb(info):
        if info.phase == "denoise" and info.step > 0:
            steps.append(info.step)
            if info.step == 2:
                raise GenerationCancelled()

    with pytest.raises(GenerationCancelled):
        tiny_pipe.generate(_settings(steps=6), callback=cb)
    assert steps == [1, 2]


def test_progress_phases_in_order(tiny_pipe):
    phases = []
    tiny_pipe.generate(_settings(steps=3), callback=lambda i: phases.append((i.phase, i.step)))
    order = [p for i, (p, _) in enumerate(phases) if i == 0 or phases[i - 1][0] != p]
    assert order == ["lora", "text", "encode", "denoise", "decode"]
    assert [s for p, s in phases if p == "denoise"] == [0, 1, 2, 3]


def _fitted_condition_pixels(pipe, image, fit):
    """The pixels (0..255, H x W x 3) the VAE encoder receives for an i2v image fitted with ``fit``."""
    seen = []
    handle = pipe.vae.encoder.register_forward_pre_hook(lambda mod, args: seen.append(args[0].detach().clone()))
    try:
        pipe.generate(_settings(task="i2v", noise_multipliers="0", steps=1, size="64x64", fit=fit), images=[image])
    finally:
        handle.remove()
    first = seen[0].float()[0, :, 0]  # the image alone, as a one-frame video: (3, H, W) in [-1, 1]
    return ((first + 1.0) * 127.5).round().permute(1, 2, 0).numpy()


def test_letterbox_keeps_the_whole_image_and_crop_fills_with_the_centre(tiny_pipe):
    """A 200x50 (4:1) image into 64x64. Red rises with the column (30 + x), green marks the top half
    (100) and bottom half (180); nothing in it is black. Stretching would show red from ~30 to ~230
    over the full height; letterbox must keep all columns in a 64x16 band between black bars; crop
    must fill the frame with the central 50x50 (columns 75..124: red ~105..154)."""
    x = np.arange(200, dtype=np.float32)
    arr = np.zeros((50, 200, 3), np.uint8)
    arr[..., 0] = (30 + x)[None, :]
    arr[:25, :, 1], arr[25:, :, 1] = 100, 180
    arr[..., 2] = 60
    wide = Image.fromarray(arr)

    box = _fitted_condition_pixels(tiny_pipe, wide, "letterbox")
    content_rows = np.flatnonzero(box.max(axis=(1, 2)) > 0)
    assert content_rows.tolist() == list(range(24, 40))  # 64 * 50 / 200 = 16 rows, centred: aspect kept
    assert (box[:24] == 0).all() and (box[40:] == 0).all()  # black bars, exactly
    band = box[24:40]
    assert band.min() > 0 and np.abs(band[:, :, 2] - 60).max() <= 3  # the content is the image's, no bar inside
    assert band[:, 0, 0].mean() < 40 and band[:, -1, 0].mean() > 220  # every column is there, left to right
    assert band[1, :, 1].mean() < 110 and band[-2, :, 1].mean() > 170  # top half above bottom half

    crop = _fitted_condition_pixels(tiny_pipe, wide, "crop")
    assert crop.min() > 0  # no bars: the frame is filled
    left, right = crop[:, 0, 0].mean(), crop[:, -1, 0].mean()
    assert 100 <= left <= 112 and 147 <= right <= 160  # the centre columns only
    assert crop[2, :, 1].mean() < 110 and crop[-3, :, 1].mean() > 170  # full height kept, not squashed
    assert np.abs(crop[31, :, 1] - crop[32, :, 1]).mean() > 30  # the halves meet at the middle row


def test_wan22_switches_expert_at_the_boundary(tiny_wan22, tmp_path):
    from pusa.testing.layouts import make_tiny_dit, write_lora

    high = write_lora(tmp_path / "high_noise_pusa.safetensors", make_tiny_dit(0), "pusa", seed=1)
    write_lora(tmp_path / "low_noise_pusa.safetensors", make_tiny_dit(0), "pusa", seed=2)
    pipe = PusaPipeline.from_pretrained(tiny_wan22, lora=tmp_path, device="cpu")
    assert pipe.is_wan22 and len(pipe.lora_paths) == 2 and str(high) in pipe.lora_paths
    # By hand (DESIGN.md §3): 10 steps, shift 5, u_k = 1 - k/10, s_k = 5u / (1 + 4u):
    # largest t_k = trunc(1000 s_k) = 1000, 978, 952, 921, 882 | 833, 769, 681, 555, 357.
    # High-noise expert while t >= 0.875 * 1000 = 875: the first five steps.
    expected = ["high"] * 5 + ["low"] * 5
    s = _settings(steps=10, cfg=1.0)
    assert pipe.generate(s).experts == expected
    # i2v whose frame 0 is an exact condition (t = 0 on every step): the rule looks at the step's
    # largest timestep (the generated frames), so the sequence is the same
    i2v = _settings(task="i2v", steps=10, cfg=1.0, noise_multipliers="0")
    assert pipe.generate(i2v, images=[gradient_image()]).experts == expected
    # separate alphas: changing only the low-noise alpha changes only the low expert's weights
    pipe.apply_lora_scales(s.model_copy(update={"lora_alpha": 1.5, "lora_alpha_low": 1.4}))
    h1 = pipe.transformers[0].blocks[0].attn1.to_q.weight.clone()
    l1 = pipe.transformers[1].blocks[0].attn1.to_q.weight.clone()
    pipe.apply_lora_scales(s.model_copy(update={"lora_alpha": 1.5, "lora_alpha_low": 0.5}))
    assert torch.equal(h1, pipe.transformers[0].blocks[0].attn1.to_q.weight)
    assert not torch.equal(l1, pipe.transformers[1].blocks[0].attn1.to_q.weight)


def test_wan22_lora_needs_both_experts(tiny_wan22, tmp_path):
    from pusa.testing.layouts import make_tiny_dit, write_lora

    high = write_lora(tmp_path / "h.safetensors", make_tiny_dit(0), "pusa")
    with pytest.raises(InputError, match="needs both LoRAs"):
        PusaPipeline.from_pretrained(tiny_wan22, lora=high, device="cpu")


def test_bad_device_and_offload_names(tiny_diffusers):
    with pytest.raises(InputError, match="offload: 'all' is not allowed; expected one of none, model, group"):
        PusaPipeline.from_pretrained(tiny_diffusers, offload="all")
    with pytest.raises(InputError, match="device: 'tpu' is not allowed"):
        PusaPipeline.from_pretrained(tiny_diffusers, device="tpu")


def test_model_offload_path_runs(tiny_diffusers):
    """Offload hooks are attached by the same code on any device (CPU here: a no-op placement)."""
    pipe = PusaPipeline.from_pretrained(tiny_diffusers, device="cpu", offload="model", text_encoder_on_cpu=True)
    assert pipe.generate(_settings(steps=1)).frames.shape == (9, 64, 64, 3)
