"""Parallel degrees and the checks made before loading (no processes started here)."""

from __future__ import annotations

import pytest
import torch

from pusa.errors import InputError
from pusa.parallel.degrees import Degrees, check_tokens, resolve_degrees
from pusa.parallel.launch import degree_flags, without_nproc
from pusa.parallel.runtime import pseudo_frames

WAN_HEADS = 40


@pytest.mark.parametrize("nproc,cfg,expected", [
    (1, 5.0, Degrees()),
    (2, 5.0, Degrees(cfg=2)),
    (2, 1.0, Degrees(ulysses=2)),
    (4, 5.0, Degrees(cfg=2, ulysses=2)),
    (8, 5.0, Degrees(cfg=2, ulysses=4)),
    (8, 1.0, Degrees(ulysses=8)),
    (5, 5.0, Degrees(ulysses=5)),  # odd: no CFG split, 5 divides 40 heads
])
def test_defaults_split_guidance_first_then_ulysses(nproc, cfg, expected):
    assert resolve_degrees(nproc, WAN_HEADS, cfg) == expected


def test_given_degrees_fill_the_rest():
    assert resolve_degrees(8, WAN_HEADS, 5.0, ulysses=8) == Degrees(ulysses=8)
    assert resolve_degrees(8, WAN_HEADS, 5.0, cfg_parallel=1) == Degrees(ulysses=8)
    assert resolve_degrees(8, WAN_HEADS, 5.0, ulysses=4) == Degrees(cfg=2, ulysses=4)
    assert resolve_degrees(8, WAN_HEADS, 5.0, ring=2, ulysses=2) == Degrees(cfg=2, ring=2, ulysses=2)


@pytest.mark.parametrize("kwargs,message", [
    (dict(nproc=3, cfg_scale=5.0), "allowed: 1, 2, 4, 5, 8, 10, 20, 40"),
    (dict(nproc=6, cfg_scale=5.0), "ulysses-degree: 3 does not divide the model's 40 attention heads"),
    (dict(nproc=8, cfg_scale=5.0, ulysses=3), "their product must equal the number of ranks"),
    (dict(nproc=4, cfg_scale=5.0, ulysses=2, cfg_parallel=1), "= 2, but --nproc is 4"),
    (dict(nproc=2, cfg_scale=1.0, cfg_parallel=2), "cfg-parallel: 2 needs guidance"),
    (dict(nproc=2, cfg_scale=5.0, cfg_parallel=4), "cfg-parallel: 4 is not allowed; expected one of 1, 2"),
    (dict(nproc=0, cfg_scale=5.0), "nproc: 0 is not allowed"),
    (dict(nproc=2, cfg_scale=1.0, ring=2, ring_supported=False), "ring-degree: 2 needs an attention backend"),
])
def test_degrees_the_model_cannot_take_are_input_errors(kwargs, message):
    with pytest.raises(InputError, match=message.replace("(", r"\(")):
        resolve_degrees(heads=WAN_HEADS, **kwargs)


def test_two_by_four_on_eight_ranks():
    """CFG 2 x Ulysses 4: ranks 0-3 run the positive prompt, 4-7 the negative; partners are 4 apart;
    the same numbering as init_device_mesh's row-major (cfg, ring, ulysses) mesh."""
    d = resolve_degrees(8, WAN_HEADS, 5.0)
    assert (d.cfg, d.ring, d.ulysses, d.context) == (2, 1, 4, 4)
    assert [d.branch(r) for r in range(8)] == ["positive"] * 4 + ["negative"] * 4
    assert d.context_group(1) == d.context_group(3) == [0, 1, 2, 3]
    assert d.context_group(6) == [4, 5, 6, 7]
    assert [d.cfg_group(r) for r in (0, 3, 5)] == [[0, 4], [3, 7], [1, 5]]
    mesh = torch.arange(8).view(d.cfg, d.ring, d.ulysses)  # how init_device_mesh lays out the ranks
    for r in range(8):
        c, g, u = d.coordinates(r)
        assert int(mesh[c, g, u]) == r
        assert mesh[:, g, u].tolist() == d.cfg_group(r)
        assert sorted(mesh[c].flatten().tolist()) == d.context_group(r)
    assert d.describe() == "CFG-parallel 2 x Ulysses 4 (8 ranks)"


def test_the_context_degree_must_divide_a_frames_tokens():
    check_tokens(Degrees(cfg=2, ulysses=8), 52 * 30)  # 832x480: 1560 tokens per frame
    check_tokens(Degrees(ulysses=40), 80 * 45)  # 1280x720: 3600
    check_tokens(Degrees(cfg=2), 7)  # CFG-parallel alone does not split tokens
    with pytest.raises(InputError, match="size: 48x48 gives 9 tokens per latent frame"):
        check_tokens(Degrees(ulysses=2), 9, "48x48")


@pytest.mark.parametrize("frames,context,k", [(21, 2, 2), (21, 8, 8), (20, 8, 2), (4, 2, 1), (3, 4, 4)])
def test_pseudo_frames_split_evenly(frames, context, k):
    assert pseudo_frames(frames, context) == k
    assert (frames * k) % context == 0


def test_a_frame_given_as_equal_runs_is_the_same_forward():
    """What context parallelism relies on when the ranks do not divide the latent frames: each
    frame's timestep given k times (k runs of its tokens) is the same per-frame computation."""
    from pusa.speed.modulation import install_per_frame
    from pusa.testing.layouts import make_tiny_dit

    dit = install_per_frame(make_tiny_dit(0))
    g = torch.Generator().manual_seed(0)
    x, ctx = torch.randn(1, 16, 3, 8, 8, generator=g), torch.randn(1, 64, 32, generator=g)
    t = torch.tensor([[0.0, 400.0, 900.0]])
    with torch.no_grad():
        whole = dit(hidden_states=x, timestep=t, encoder_hidden_states=ctx, return_dict=False)[0]
        runs = dit(hidden_states=x, timestep=t.repeat_interleave(4, dim=1), encoder_hidden_states=ctx,
                   return_dict=False)[0]
        wrong = dit(hidden_states=x, timestep=t.repeat(1, 4), encoder_hidden_states=ctx, return_dict=False)[0]
    assert torch.allclose(whole, runs, atol=1e-6)
    assert not torch.allclose(whole, wrong, atol=1e-3)  # the runs must stay frame-major


def test_the_relaunched_command_drops_nproc_and_names_the_degrees():
    argv = ["generate", "t2v", "--prompt", "x", "--nproc", "2", "--npro=4", "--seed", "1"]
    assert without_nproc(argv) == ["generate", "t2v", "--prompt", "x", "--seed", "1"]
    assert degree_flags(Degrees(cfg=2, ulysses=4)) == ["--ulysses-degree", "4", "--ring-degree", "1",
                                                       "--cfg-parallel", "2"]


# ----------------------------------------------------------------------------- the CLI, before loading

@pytest.fixture
def no_loading(monkeypatch):
    """Fail the test if anything is loaded or launched: these errors must come first."""
    from pusa.parallel import launch
    from pusa.pipeline import PusaPipeline

    def refuse(*a, **k):
        raise AssertionError("loaded or launched before the usage error")

    monkeypatch.setattr(PusaPipeline, "from_pretrained", refuse)
    monkeypatch.setattr(launch.subprocess, "Popen", refuse)


def _generate(model, *extra):
    from pusa.cli import main

    return main(["generate", "t2v", "--prompt", "x", "--model", str(model), "--device", "cpu", *extra])


@pytest.mark.parametrize("extra,message", [
    (["--nproc", "3"], "ulysses-degree: 3 does not divide the model's 2 attention heads; allowed: 1, 2"),
    (["--nproc", "2", "--ulysses-degree", "4"], "--ulysses-degree 4 x --ring-degree 1"),
    (["--nproc", "2", "--ring-degree", "2"], "ring-degree: 2 needs an attention backend"),
    (["--nproc", "2", "--cfg-parallel", "2", "--cfg", "1"], "cfg-parallel: 2 needs guidance"),
    (["--nproc", "2", "--ulysses-degree", "2", "--size", "48x48"], "size: 48x48 gives 9 tokens per latent frame"),
    (["--nproc", "2", "--offload", "model"], "offload: 'model' is not allowed with several ranks"),
    (["--nproc", "2", "--rank-timeout", "0"], "rank-timeout: 0 is not allowed"),
    (["--ulysses-degree", "2"], "= 2, but --nproc is 1"),
    (["--nproc", "2", "--ulysses-degree", "2", "--cache", "fbcache"], "cache: 'fbcache' is not allowed with ring x"),
])
def test_bad_degrees_exit_2_before_loading(tiny_diffusers, no_loading, capsys, extra, message):
    assert _generate(tiny_diffusers, *extra) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_under_torchrun_nproc_must_match_the_ranks(tiny_diffusers, no_loading, capsys, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    assert _generate(tiny_diffusers, "--nproc", "4") == 2
    assert "nproc: 4 was asked for, but torchrun started 2 ranks" in capsys.readouterr().err


def test_serve_checks_its_degrees_before_starting(tiny_diffusers, tmp_path, caplog, monkeypatch):
    """``pusa serve --nproc N``: a degree the model cannot take is a usage error before the server starts."""
    import uvicorn

    from pusa.cli import main

    monkeypatch.setattr(uvicorn.Server, "run", lambda self: pytest.fail("the server started"))
    code = main(["serve", "--nproc", "3", "--model", str(tiny_diffusers), "--device", "cpu",
                 "--data-dir", str(tmp_path / "data")])
    assert code == 2
    assert "ulysses-degree: 3 does not divide the model's 2 attention heads; allowed: 1, 2" in caplog.text
