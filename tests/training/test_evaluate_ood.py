"""`pusa eval`'s out-of-distribution figures: they reward keeping the picture and moving the object."""

from __future__ import annotations

import numpy as np

from pusa.training.evaluate import (MISSING_PENALTY, format_table, ood_cases, score_ood, vae_psnr_by_kind)
from pusa.training.scenes import HELD_OUT_KINDS


def test_ood_cases_cover_every_held_out_kind():
    cases = ood_cases(2, 0, 64, 64, 9)
    assert [c.background for c in cases] == [k for k in HELD_OUT_KINDS for _ in range(2)]
    assert all(c.frames.shape == (9, 64, 64, 3) and len(c.objects) == 1 for c in cases)


def test_the_true_clip_scores_well_and_blobs_on_black_score_badly():
    for clip in ood_cases(1, 3, 64, 64, 17):
        truth = score_ood(clip.frames, clip)
        assert truth["cond_psnr"] == 99.0 and truth["bg_psnr"] > 40, (clip.background, truth)
        if clip.background != "studio":  # the half-set sun of the studio picture is not a full disc
            assert truth["traj_err"] < 2.0, (clip.background, truth)
        frozen = np.repeat(clip.frames[:1], len(clip.frames), axis=0)  # the picture kept, nothing moves
        still = score_ood(frozen, clip)
        assert still["bg_psnr"] > 30 and still["traj_err"] > truth["traj_err"], (clip.background, still)
        blobs = np.zeros_like(clip.frames)  # what the shapes-only model made of pictures
        blobs[:, 20:30, 20:30] = 200
        lost = score_ood(blobs, clip)
        assert lost["bg_psnr"] < 15 and lost["traj_err"] == MISSING_PENALTY, (clip.background, lost)


class _IdentityCodec:
    def encode(self, px):
        return px

    def decode(self, z):
        return ((z[0].permute(1, 2, 3, 0).clamp(-1, 1) + 1) * 127.5).round().byte().numpy()


class _InvertingCodec(_IdentityCodec):
    def decode(self, z):
        return super().decode(-z)


def test_vae_psnr_per_kind_and_size():
    perfect = vae_psnr_by_kind(_IdentityCodec(), ((32, 32), (48, 32)), 2, 0)
    assert list(perfect) == ["32x32", "48x32"]
    assert set(perfect["32x32"]) == {"black", "flat", "gradient", "noise", "texture", "ground", *HELD_OUT_KINDS}
    assert all(v > 50 for row in perfect.values() for v in row.values())
    inverted = vae_psnr_by_kind(_InvertingCodec(), ((32, 32),), 2, 0)
    assert all(v < 20 for v in inverted["32x32"].values()), inverted


def test_tables_show_the_ood_and_vae_figures():
    report = {"model": "m", "cases": 1, "steps": 2, "cfg": 1.0, "seed": 0, "seconds": 1.0, "ood_cases": 1,
              "rows": [{"alpha": 1.0, "multiplier": 0.0, "i2v.cond_psnr": 20.0, "i2v.traj_err": 3.0,
                        "i2v.consistency": 50.0}],
              "ood_rows": [{"alpha": 1.0, "multiplier": 0.0, "photo.cond_psnr": 27.5, "photo.bg_psnr": 26.25,
                            "photo.traj_err": 4.0}],
              "vae_psnr": {"64x64": {"black": 30.0, "photo": 25.5}}}
    text = format_table(report, markdown=True)
    assert "| photo frame 0 dB | photo bg kept dB | photo traj px |" in text and "| 27.5 | 26.2 | 4.0 |" in text
    assert "| size | black | photo* |" in text and "| 64x64 | 30.0 | 25.5 |" in text


def test_negative_case_counts_are_usage_errors(capsys):
    from pusa.cli import main

    for flag in ("--ood-cases", "--vae-cases"):
        assert main(["eval", flag, "-1"]) == 2
        assert f"{flag[2:]}: -1 is not allowed" in capsys.readouterr().err
