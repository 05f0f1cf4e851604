"""The bundled pusa-tiny model does what it is for: measured behaviour, with margins.

Thresholds come from the measured table in docs/training.md (4 cases, 10 steps); this runs a
smaller subset (2 cases, fewer steps), so each bound leaves room for that difference.
"""

from __future__ import annotations

import json

import pytest

from pusa.bundled import BUNDLED_DIR

# Measured on this exact subset (2 cases, alpha 0 / 1.4, multiplier 0.2, 8 steps), eval.json:
#   alpha 1.4: i2v PSNR 32.8, i2v traj 18.1, key PSNR 27.5, key end 1.5, key traj 4.0 (px)
#   alpha 0:   i2v traj 28.3, key end 1.6, key traj 19.6
#   held out (fields / photo / studio), alpha 1.4: frame 0 20.4 / 23.7 / 25.2 dB, background kept
#   15.5 / 19.8 / 16.7 dB (alpha 0: 5.7 / 11.2 / 4.8); VAE 25.8 / 27.5 / 28.3 dB
# Bounds leave room for other CPUs/BLAS builds; they still fail if the LoRA stops working.
# The keyframe *end* error is not compared with the base: at a low multiplier the end latent is
# (nearly) pinned, and the VAE decodes it faithfully whatever the DiT made of the frames before
# it, so the base hits it too (1.6 px). The path between keyframes is what VTA buys.
THRESHOLDS = {
    "lora": {
        "i2v.cond_psnr": (">=", 28.0),
        "keyframes.cond_psnr": (">=", 24.0),
        "keyframes.end_err": ("<=", 4.0),
        "keyframes.traj_err": ("<=", 8.0),
        "i2v.traj_err": ("<=", 22.0),
    },
    # LoRA must beat the base (alpha 0) by at least this many px (measured: 15.6, 10.2). These are the
    # recorded 2 cases; over 32 held-out cases the gains are 4.7 and 1.6 px (docs/training.md).
    "better_than_base": {"keyframes.traj_err": 8.0, "i2v.traj_err": 6.0},
    # a picture of a kind no training set had (issue 13): frame 0 and the background over the clip
    # with the LoRA, dB per held-out kind (the first pusa-tiny: 8.5-9.9 and 4.6-10.3)
    "ood_lora": {"cond_psnr": (">=", 19.0), "bg_psnr": (">=", 12.0)},
    # the LoRA keeps the picture's background better than the base (which draws black) by this many dB
    "ood_bg_better_than_base": 5.0,
    # the VAE on held-out kinds (issue 13's bar), 64x64, dB
    "vae_held_out": 25.0,
}


def test_bundled_model_is_complete_and_small():
    meta = json.loads((BUNDLED_DIR / "pusa.json").read_text())
    assert (meta["width"], meta["height"], meta["frames"]) == (64, 64, 33)
    assert meta["label"].startswith("pusa-tiny")
    assert (BUNDLED_DIR / meta["lora"]).is_file()
    for part in ("model_index.json", "transformer", "vae", "text_encoder", "tokenizer"):
        assert (BUNDLED_DIR / part).exists(), part
    size = sum(f.stat().st_size for f in BUNDLED_DIR.rglob("*") if f.is_file())
    assert size <= 25 * 1024 * 1024


@pytest.fixture(scope="module")
def report():
    from pusa.training.build_tiny import recorded_eval_config
    from pusa.training.evaluate import run_evaluation

    return run_evaluation(recorded_eval_config(BUNDLED_DIR))


# How far a figure may move on another CPU or BLAS build (floats round differently) and still count
# as reproduced; a changed weight file moves them much further.
TOLERANCE = {"psnr": 1.0, "err": 3.0, "consistency": 15.0}


def _tolerance(key: str) -> float:
    return next(t for name, t in TOLERANCE.items() if name in key.rsplit(".", 1)[-1])


def test_committed_weights_reproduce_the_figures_recorded_with_them(report):
    from pusa.training.build_tiny import EVAL_FILE, figures

    recorded, now = json.loads((BUNDLED_DIR / EVAL_FILE).read_text()), figures(report)
    assert recorded.keys() == now.keys()
    pairs = [(f"{part}[{i}].{k}", v, now[part][i][k]) for part in ("rows", "ood_rows")
             for i, row in enumerate(recorded[part]) for k, v in row.items() if k not in ("alpha", "multiplier")]
    pairs += [(f"vae {size}.{kind}", v, now["vae_psnr"][size][kind]) for size, kinds in recorded["vae_psnr"].items()
              for kind, v in kinds.items()]
    assert len(pairs) > 30
    off = [(key, was, got) for key, was, got in pairs
           if not abs(was - got) <= _tolerance(key if key.startswith(("rows", "ood")) else "psnr")]
    assert not off, off


def _row(report, alpha):
    return next(r for r in report["rows"] if r["alpha"] == alpha)


def test_vta_lora_meets_measured_quality(report):
    lora = _row(report, 1.4)
    for key, (op, bound) in THRESHOLDS["lora"].items():
        value = lora[key]
        assert (value <= bound) if op == "<=" else (value >= bound), (key, value, bound)


def test_vta_lora_beats_the_base_model_at_conditions(report):
    base, lora = _row(report, 0.0), _row(report, 1.4)
    for key, margin in THRESHOLDS["better_than_base"].items():
        assert lora[key] + margin <= base[key], (key, lora[key], base[key])


def _ood_row(report, alpha):
    return next(r for r in report["ood_rows"] if r["alpha"] == alpha)


def test_vta_lora_keeps_a_picture_it_never_saw(report):
    from pusa.training.scenes import HELD_OUT_KINDS

    base, lora = _ood_row(report, 0.0), _ood_row(report, 1.4)
    for kind in HELD_OUT_KINDS:
        for metric, (op, bound) in THRESHOLDS["ood_lora"].items():
            value = lora[f"{kind}.{metric}"]
            assert (value <= bound) if op == "<=" else (value >= bound), (kind, metric, value, bound)
        margin = THRESHOLDS["ood_bg_better_than_base"]
        assert lora[f"{kind}.bg_psnr"] >= base[f"{kind}.bg_psnr"] + margin, (kind, lora, base)


def test_vae_reconstructs_held_out_kinds_at_the_issues_bar(report):
    from pusa.training.scenes import HELD_OUT_KINDS

    row = report["vae_psnr"]["64x64"]
    for kind in HELD_OUT_KINDS:
        assert row[kind] >= THRESHOLDS["vae_held_out"], (kind, row[kind])
