"""Synthetic clips: trajectories are true to the pixels, captions describe the objects, files read back."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pusa.errors import InputError
from pusa.training.data import read_clip, read_samples
from pusa.training.evaluate import object_track
from pusa.training.synthetic import DIRECTIONS, random_clip


def test_rendered_object_is_where_the_trajectory_says():
    rng = np.random.default_rng(0)
    for _ in range(5):
        clip = random_clip(rng, 64, 64, 17, n_objects=1)
        obj = clip.objects[0]
        truth = np.asarray(obj.trajectory)
        for color in (obj.color, None):  # by colour, and as the only foreground (what eval uses)
            centres, area = object_track(clip.frames, color)
            assert (area > 10).all()
            # the triangle's pixel centroid sits a little off its circumcentre
            tol = 2.0 if obj.shape == "triangle" else 0.75
            assert np.abs(centres - truth).max() < tol, (obj.shape, color, np.abs(centres - truth).max())


def test_objects_move_as_captioned_and_stay_inside():
    rng = np.random.default_rng(1)
    for _ in range(20):
        clip = random_clip(rng, 64, 64, 33)
        assert " and ".join(o.phrase() for o in clip.objects) == clip.caption
        for o in clip.objects:
            traj = np.asarray(o.trajectory)
            assert (traj >= o.radius - 1e-6).all() and (traj <= 64 - o.radius + 1e-6).all()
            first = traj[1] - traj[0]
            dx, dy = DIRECTIONS[o.direction]
            assert np.dot(first, [dx, dy]) > 0 or not np.allclose(traj[1], traj[0] + first)
            assert o.color in clip.caption and o.shape in clip.caption


def test_dataset_round_trip_jsonl_and_csv(tmp_path):
    from pusa.training.synthetic import make_dataset

    root = make_dataset(tmp_path / "d", 2, seed=5, width=32, height=32, frames=9)
    samples = read_samples(root)
    assert len(samples) == 2
    meta = [json.loads(line) for line in (root / "metadata.jsonl").read_text().splitlines()]
    assert samples[0].caption == meta[0]["caption"]
    clip = read_clip(samples[0].video, 9, 32, 32)
    assert clip.shape == (3, 9, 32, 32)
    # the near-lossless encoding keeps the object where the metadata says
    frames = ((clip.permute(1, 2, 3, 0).numpy() + 1) * 127.5).round().astype(np.uint8)
    obj = meta[0]["objects"][0]
    centres, _ = object_track(frames, obj["color"])
    assert np.nanmax(np.abs(centres - np.asarray(obj["trajectory"]))) < 2.5

    (root / "metadata.jsonl").unlink()
    (root / "captions.csv").write_text("video,text\n" + "".join(f"{m['file']},{m['caption']}\n" for m in meta))
    assert [s.caption for s in read_samples(root)] == [m["caption"] for m in meta]
    with pytest.raises(InputError, match="frames"):
        read_clip(samples[0].video, 13, 32, 32)


def test_missing_video_is_reported(tmp_path):
    (tmp_path / "metadata.jsonl").write_text(json.dumps({"file": "nope.mp4", "caption": "x"}) + "\n")
    with pytest.raises(InputError, match="video not found"):
        read_samples(tmp_path)
