"""Sweeps: axes and their errors, cells and labels, the grid video, the table, and ``pusa sweep``."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from pusa.cli import main
from pusa.errors import SettingsError
from pusa.media import video_info
from pusa.settings import GenerationSettings
from pusa.sweep import expand, grid_frames, iter_video, parse_axes, write_grid, write_table

from .helpers import gradient_image


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("spec, field, words", [
    ({"cfg": [1, 2]}, "sweep", "lora_alpha, noise_multipliers, steps, seed"),
    ({"lora_alpha": [1.0]}, "sweep.lora_alpha", "give 2 or 3"),
    ({"lora_alpha": "1,1.4,2,3"}, "sweep.lora_alpha", "4 value(s)"),
    ({"lora_alpha": [1.0, 1.0]}, "sweep.lora_alpha", "given twice"),
    ({"steps": [5, 7.5]}, "sweep.steps", "not a whole number"),
    ({"seed": ["x", 2]}, "sweep.seed", "not a number"),
    ({"steps": [1, 2], "seed": [1, 2], "lora_alpha": [1, 2]}, "sweep", "3 axes"),
    ({}, "sweep", "0 axes"),
])
def test_bad_axes_name_the_field_and_the_allowed_values(spec, field, words) -> None:
    with pytest.raises(SettingsError) as e:
        parse_axes(spec)
    assert e.value.fields == [field] and words in str(e.value)


def test_cli_axis_texts_parse_like_the_api_mapping() -> None:
    cli = parse_axes(["lora_alpha=1.0,1.4,2.0", "noise_multipliers=0.2/0.5,0.1/0.3"])
    api = parse_axes({"lora_alpha": [1.0, 1.4, 2.0], "noise_multipliers": [[0.2, 0.5], [0.1, 0.3]]})
    assert cli == api
    assert api[1].values == ((0.2, 0.5), (0.1, 0.3))


def test_cells_are_row_major_with_the_first_axis_down_and_labels_in_axis_order() -> None:
    axes = parse_axes({"lora_alpha": [1.0, 1.4, 2.0], "noise_multipliers": [0.1, 0.3, 0.5]})
    cells = expand({"task": "i2v", "prompt": "p"}, axes, conditions=1)
    assert len(cells) == 9
    c = cells[1]  # first row, second column: the first alpha, the second multiplier
    assert (c.row, c.col) == (0, 1)
    assert c.request["lora_alpha"] == 1.0 and c.request["noise_multipliers"] == [0.3]
    assert c.label == "alpha 1.0 · mult 0.3"
    assert cells[5].label == "alpha 1.4 · mult 0.5" and (cells[5].row, cells[5].col) == (1, 2)


def test_one_seed_for_every_cell_unless_the_seed_is_swept() -> None:
    cells = expand({"task": "t2v", "prompt": "p"}, parse_axes({"steps": [2, 4, 6]}), conditions=0)
    seeds = {c.request["seed"] for c in cells}
    assert len(seeds) == 1 and None not in seeds
    assert [c.request["steps"] for c in cells] == [2, 4, 6]
    given = expand({"task": "t2v", "prompt": "p", "seed": 5}, parse_axes({"steps": [2, 4]}), conditions=0)
    assert {c.request["seed"] for c in given} == {5}
    swept = expand({"task": "t2v", "prompt": "p", "seed": 5}, parse_axes({"seed": [1, 2]}), conditions=0)
    assert [c.request["seed"] for c in swept] == [1, 2]


def test_a_multiplier_applies_to_every_condition_or_one_per_condition() -> None:
    base = {"task": "keyframes", "prompt": "p"}
    each = expand(base, parse_axes({"noise_multipliers": [0.1, 0.4]}), conditions=2)
    assert [c.request["noise_multipliers"] for c in each] == [[0.1, 0.1], [0.4, 0.4]]
    per = expand(base, parse_axes({"noise_multipliers": "0.2/0.5,0/0.3"}), conditions=2)
    assert [c.request["noise_multipliers"] for c in per] == [[0.2, 0.5], [0.0, 0.3]]
    assert per[0].label == "mult 0.2/0.5"
    with pytest.raises(SettingsError) as e:
        expand(base, parse_axes({"noise_multipliers": "0.2/0.5/0.1,0/0.3"}), conditions=2)
    assert e.value.fields == ["sweep.noise_multipliers"] and "2 condition(s)" in str(e.value)
    with pytest.raises(SettingsError) as e:
        expand({"task": "t2v", "prompt": "p"}, parse_axes({"noise_multipliers": [0.1, 0.2]}), conditions=0)
    assert e.value.fields == ["sweep.noise_multipliers"] and "no conditions" in str(e.value)


def test_each_cell_goes_through_the_settings_check_and_names_the_axis() -> None:
    def check(raw):
        return GenerationSettings.parse(raw).resolve(n_images=1)

    with pytest.raises(SettingsError) as e:
        expand({"task": "i2v", "prompt": "p"}, parse_axes({"lora_alpha": [1.0, 7.0]}), conditions=1, check=check)
    assert e.value.fields == ["sweep.lora_alpha"] and "7.0" in str(e.value)
    with pytest.raises(SettingsError) as e:  # a problem of the base request keeps its own name
        expand({"task": "i2v", "prompt": "p", "cfg": 99.0}, parse_axes({"steps": [1, 2]}), conditions=1, check=check)
    assert e.value.fields == ["cfg"]


def _solid(color, frames: int, size=(16, 24)):
    return iter([np.full((size[0], size[1], 3), color, np.uint8)] * frames)


def test_the_grid_puts_each_video_under_its_label_and_holds_a_short_one() -> None:
    colors = [(250, 0, 0), (0, 250, 0), (0, 0, 250), (250, 250, 0)]
    videos = [_solid(c, 3 if i else 1) for i, c in enumerate(colors)]
    frames = list(grid_frames(videos, ["a", "b", "c", "d"], 2, 2))
    assert len(frames) == 3
    f = frames[-1][0]
    h, w = f.shape[:2]
    # the bottom pixel row of each tile, in the middle of the tile: the video's colour (row-major)
    cell_w = (w - 4) // 2
    for i, color in enumerate(colors):
        r, c = divmod(i, 2)
        y = (h - 4) // 2 - 2 + r * ((h - 4) // 2 + 4)
        x = c * (cell_w + 4) + cell_w // 2
        assert np.abs(f[y, x].astype(int) - color).max() < 8, (i, f[y, x])
    # a label strip (dark with white text) sits on top of every tile
    assert f[1, 1].max() < 40 and f[:12, :cell_w].max() > 200


def test_write_grid_and_table(tmp_path) -> None:
    from pusa.media import write_mp4

    paths = [write_mp4(np.full((5, 32, 32, 3), v, np.uint8), tmp_path / f"c{v}.mp4", 8) for v in (40, 200)]
    out = write_grid(paths, ["alpha 1.0", "alpha 2.0"], 1, 2, tmp_path / "grid.mp4", 8)
    frames = list(iter_video(out))
    assert len(frames) == 5 and frames[0].shape[1] > frames[0].shape[0]  # side by side
    rows = [{"cell": 1, "row": 1, "col": 1, "label": "alpha 1.0", "file": "c40.mp4",
             "settings": {"seed": 3, "lora_alpha": 1.0, "noise_multipliers": [0.1, 0.2], "steps": 4}}]
    write_table(rows, tmp_path / "t.csv", tmp_path / "t.json", {"task": "keyframes"})
    table = list(csv.DictReader((tmp_path / "t.csv").open()))
    assert table[0]["label"] == "alpha 1.0" and table[0]["noise_multipliers"] == "0.1 0.2" and table[0]["seed"] == "3"
    assert json.loads((tmp_path / "t.json").read_text())["cells"][0]["settings"]["steps"] == 4


def test_pusa_sweep_writes_cells_grid_and_table_and_a_cell_equals_generate(capsys, tiny_diffusers, tmp_path) -> None:
    for i in range(2):
        gradient_image(seed=i).save(tmp_path / f"k{i}.png")
    common = ["--prompt", "x", "--image", str(tmp_path / "k0.png"), "--image", str(tmp_path / "k1.png"),
              "--model", str(tiny_diffusers), "--steps", "1", "--frames", "5", "--size", "64x48", "--seed", "11",
              "--no-progress", "--device", "cpu"]
    grid = tmp_path / "s" / "g.mp4"
    code, out, err = run(capsys, "sweep", "keyframes", *common, "--sweep", "noise_multipliers=0.1,0.6",
                         "--output", str(grid))
    assert code == 0, err
    assert out.strip() == str(grid) and "seed: 11" in err
    table = json.loads(grid.with_suffix(".json").read_text())
    assert [c["settings"]["noise_multipliers"] for c in table["cells"]] == [[0.1, 0.1], [0.6, 0.6]]
    assert {c["settings"]["seed"] for c in table["cells"]} == {11}
    rows = list(csv.DictReader(grid.with_suffix(".csv").open()))
    assert [r["label"] for r in rows] == ["mult 0.1", "mult 0.6"]
    cell2 = grid.parent / rows[1]["file"]
    assert video_info(grid)["frames"] == 5 and video_info(grid)["width"] > 2 * 64
    # the second cell is what `pusa generate` makes with the same settings (one loaded model, exact alpha/inputs)
    ref = tmp_path / "ref.mp4"
    code, _, err = run(capsys, "generate", "keyframes", *common, "--noise-multipliers", "0.6,0.6", "--output", str(ref))
    assert code == 0, err
    assert all(np.array_equal(a, b) for a, b in zip(iter_video(cell2), iter_video(ref), strict=True))


@pytest.mark.parametrize("extra, words", [
    (["--sweep", "lora_alpha=1,9"], "sweep.lora_alpha: 9.0"),
    (["--sweep", "cfg=1,2"], "sweep: 'cfg' cannot be swept"),
    (["--sweep", "noise_multipliers=0.1,0.2"], "sweep.noise_multipliers"),
    (["--sweep", "steps=1,2", "--output", "x.gif"], "output: x.gif must end in .mp4"),
])
def test_bad_sweeps_exit_2_with_one_line_before_loading(capsys, monkeypatch, extra, words) -> None:
    from pusa.pipeline import PusaPipeline

    def no_loading(*a, **k):
        raise AssertionError("the model was loaded before the inputs were checked")

    monkeypatch.setattr(PusaPipeline, "from_pretrained", no_loading)
    code, out, err = run(capsys, "sweep", "t2v", "--prompt", "x", *extra)  # the bundled model's configs
    assert code == 2 and words in err and len(err.strip().splitlines()) == 1, err
