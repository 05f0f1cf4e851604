"""Scene clips and varied VAE pictures: right kinds in training, held-out kinds kept out, true ground truth."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pusa.training import scenes
from pusa.training.synthetic import make_dataset


def test_every_kind_renders_a_picture_in_range():
    rng = np.random.default_rng(0)
    for kind in ("black",) + scenes.TRAIN_KINDS + scenes.HELD_OUT_KINDS:
        for w, h in ((64, 64), (96, 64)):
            pic = scenes.still_picture(kind, rng, w, h)
            assert pic.shape == (h, w, 3) and pic.dtype == np.uint8, kind
            assert pic.std() > 5, kind  # not a blank frame
    with pytest.raises(ValueError, match="background kind"):
        scenes.background("marble", rng, 8, 8)


def test_scene_objects_are_where_their_trajectories_say():
    rng = np.random.default_rng(1)
    for _ in range(6):
        clip = scenes.scene_clip(rng, 64, 64, 9, n_objects=1, pan=False)
        obj = clip.objects[0]
        changed = np.abs(clip.frames.astype(int) - clip.static_background.astype(int)).max(axis=-1) > 30
        for t in (0, 8):
            ys, xs = np.nonzero(changed[t])
            if len(xs) < 10:  # an object coloured like its background: nothing to locate
                continue
            tol = 2.5 if obj.shape == "triangle" else 1.0
            assert abs(xs.mean() + 0.5 - obj.trajectory[t][0]) < tol and abs(ys.mean() + 0.5 - obj.trajectory[t][1]) < tol


def test_camera_pan_moves_the_background_as_captioned():
    rng = np.random.default_rng(2)
    clip = scenes.scene_clip(rng, 64, 64, 33, kinds=("texture",), n_objects=1, pan="left")
    assert clip.caption.endswith("with the camera panning left") and clip.static_background is None
    first, last = clip.frames[0].astype(float), clip.frames[-1].astype(float)
    shift = round(scenes.PAN_SPEED * 64 * 32)  # camera left: the picture slides right
    errs = {dx: np.abs(last[:, 20 + dx:44 + dx] - first[:, 20:44]).mean() for dx in range(-shift - 3, shift + 4)}
    assert min(errs, key=errs.get) == shift


def test_training_set_uses_only_training_kinds_and_the_tokenizer_reads_every_caption(tmp_path):
    from pusa.training.tiny import TEXT_LEN, make_tokenizer

    root = make_dataset(tmp_path / "d", 24, seed=4, width=32, height=32, frames=5)
    meta = [json.loads(line) for line in (root / "metadata.jsonl").read_text().splitlines()]
    kinds = {m["background"] for m in meta}
    assert kinds <= {"black", *scenes.TRAIN_KINDS} and len(kinds) > 2
    tok = make_tokenizer()
    rng = np.random.default_rng(5)
    captions = [m["caption"] for m in meta] + [scenes.scene_clip(rng, 16, 16, 1).caption for _ in range(300)]
    for caption in captions:
        ids = tok(caption)["input_ids"]
        assert tok.unk_token_id not in ids and len(ids) <= TEXT_LEN, caption


def test_vae_clips_cover_backgrounds_and_black():
    rng = np.random.default_rng(6)
    clips = [scenes.vae_clip(rng, 32, 32, 5) for _ in range(30)]
    dark = [c for c in clips if np.median(c) < 5]
    assert 0 < len(dark) < 15  # some shapes-on-black clips, mostly scenes
    assert all(c.shape == (5, 32, 32, 3) and c.dtype == np.uint8 for c in clips)


def test_held_out_cases_include_the_issue_picture_and_the_studio_examples():
    rng = np.random.default_rng(7)
    photo = scenes.held_out_clip("photo", 0, rng, 64, 64, 5)
    assert photo.caption.startswith("a large red circle")
    top, bottom = photo.static_background[2, 32], photo.static_background[60, 32]
    assert top[2] > top[0] and bottom[1] > bottom[0] and bottom[1] > bottom[2]  # navy sky, green ground
    studio = scenes.held_out_clip("studio", 1, rng, 64, 64, 5)  # picture 0's sun is half below the sea
    sun = studio.objects[0].trajectory[0]
    assert studio.frames[0][int(sun[1]), int(sun[0])].tolist() == [255, 200, 40]  # the studio's sun colour
    assert studio.caption == "a large yellow circle moving up slow"
