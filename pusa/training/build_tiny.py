"""Build the bundled pusa-tiny model from nothing, reproducibly: Pusa's recipe in miniature.

Stages (each is skipped when its output already exists in ``--work``, so an interrupted build
continues where it stopped):

0. ``teacher`` pusa-tiny v1, built by its own commit's recipe (:data:`TEACHER_COMMIT`, seed 0):
   a VAE and a T2V base DiT (8000 steps) on shapes on black. Its DiT moves objects well; its VAE
   cannot draw anything but black backgrounds. ``--teacher DIR`` uses an existing v1 folder.
1. ``vae_base`` a residual Wan VAE trained on varied synthetic pictures and clips (``tiny.VAE_PHASES``)
   whose latents of shapes on black are the teacher's (``tiny.build_vae(teacher=...)``), with the
   teacher's latent statistics. From here on the encoder, and so every latent, is fixed.
2. ``vae``   sharpen its decoder alone (``tiny.DECODER_PHASES``).
3. ``data``  the LoRA's synthetic training set (mp4 + metadata.jsonl, the format `pusa train` reads):
             scenes and shapes on black.
4. ``base_t2v`` a diffusers-layout folder: word-level tokenizer, random frozen UMT5, the teacher's DiT
             and the new VAE. The DiT reads the same latents it was trained on, for any picture the
             teacher's VAE could encode; everything else is new to it.
5. ``vta``   `pusa train --mode lora --timesteps vta` on ``data``: the VTA LoRA on top of the frozen base.
6. ``out``   copy the base, the sharpened VAE and the LoRA (``pusa_tiny_lora.safetensors``) into ``--out``.

Stages 3-5 read only the encoder of stage 1, so stage 2 and stages 3-5 do not depend on each other:
``--only decoder`` and ``--only dit`` run them in two processes side by side; a last run without
``--only`` finds both done and writes the model. The two may start at once: the first to come builds
stages 0-1 while the other waits on a lock in ``--work``. From there each branch uses half the
cores (unless ``OMP_NUM_THREADS`` says otherwise): two processes with a thread per core each
oversubscribe the CPU, and PyTorch's OpenMP threads then wait on each other.

Run: ``scripts/build_pusa_tiny.sh`` (= ``python -m pusa.training.build_tiny``), seed 0.
"""

from __future__ import annotations

import argparse
import fcntl
import io
import json
import logging
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


log = logging.getLogger("pusa.training.build_tiny")

LORA_NAME = "pusa_tiny_lora.safetensors"
CLIPS, VTA_STEPS = 600, 6000
LABEL = "pusa-tiny (bundled demo: synthetic scenes and moving shapes, 64x64, 33 frames)"
# pusa-tiny v1 (2026-11-24, "rebuilt with the one documented command"): its DiT is the base of this
# build. Training a new base on a VAE for any picture lost its motion (docs/training.md, candidates
# A-E); distilling the new VAE into v1's latent space keeps it.
TEACHER_COMMIT = "84f53438e093675b95eeaf0f7dacd396f702e502"
REPO_ROOT = Path(__file__).resolve().parents[2]

STAGE_GROUPS = ("all", "decoder", "dit")


class TeacherUnavailable(RuntimeError):
    """The teacher's recipe cannot be checked out (no git, or a clone without that commit)."""


def build_teacher(folder: Path, *, seed: int = 0, extra_args: tuple[str, ...] = ()) -> Path:
    """pusa-tiny v1 in ``folder/out``, built by the recipe of :data:`TEACHER_COMMIT` in a process of its own.

    The recipe's source is taken from this clone's git history, so the teacher is exactly what that
    commit's one command builds; ``extra_args`` go to that command (tests pass toy step counts).
    """
    out = folder / "out"
    if (out / "model_index.json").is_file():
        return out
    src = folder / "src"
    if not (src / "pusa" / "training" / "build_tiny.py").is_file():
        try:
            tar = subprocess.run(["git", "-C", str(REPO_ROOT), "archive", "--format=tar", TEACHER_COMMIT],
                                 capture_output=True, check=True).stdout
        except (OSError, subprocess.CalledProcessError) as exc:
            raise TeacherUnavailable(
                f"the teacher's recipe is commit {TEACHER_COMMIT[:10]} of this project's git history, which "
                f"{REPO_ROOT} does not have ({exc}); run `git fetch --unshallow`, or pass --teacher DIR "
                "(a pusa-tiny v1 folder)") from exc
        tmp = folder / "src.partial"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        with tarfile.open(fileobj=io.BytesIO(tar)) as archive:  # this clone's own history; "data" where known
            archive.extractall(tmp, **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))
        shutil.rmtree(src, ignore_errors=True)
        tmp.rename(src)
    log.info("teacher: building pusa-tiny v1 from commit %s in %s", TEACHER_COMMIT[:10], src)
    subprocess.run([sys.executable, "-m", "pusa.training.build_tiny", "--work", str(folder / "work"),
                    "--out", str(out), "--seed", str(seed), *extra_args],
                   cwd=src, env={**os.environ, "PYTHONPATH": str(src)}, check=True)
    return out


SHARED_STAGES_LOCK = ".shared-stages.lock"


@contextmanager
def shared_stages_lock(work: Path) -> Iterator[None]:
    """Hold the work folder's lock on stages 0-1 while inside; a second build process waits here.

    Both branches need the teacher and ``vae_base``; without the lock two branches started together
    would build them twice, into the same folders. The OS drops the lock of a killed process, and
    the waiting one then finds the stage outputs missing and builds them itself (resumable).
    """
    work.mkdir(parents=True, exist_ok=True)
    with open(work / SHARED_STAGES_LOCK, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.info("another build process holds %s: waiting for it to finish the teacher and vae_base",
                     work / SHARED_STAGES_LOCK)
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def build(work: Path, out: Path, *, seed: int = 0, teacher: Path | None = None,
          vae_steps: tuple[int, ...] | None = None, decoder_steps: tuple[int, ...] | None = None,
          clips: int = CLIPS, vta_steps: int = VTA_STEPS, batch: int = 16, only: str = "all",
          branch_threads: int | None = None) -> dict:
    """Run every missing stage (of ``only``'s group); returns timings (seconds) per stage.

    ``teacher`` (a pusa-tiny v1 folder) skips stage 0. ``only="decoder"`` or ``"dit"`` stops after
    that branch (module doc). ``branch_threads`` sets PyTorch's thread count from the branch on (the
    caller restores it): the share of the cores for a branch run beside the other.
    """
    if only not in STAGE_GROUPS:
        raise ValueError(f"only: {only!r} is not allowed; expected one of {', '.join(STAGE_GROUPS)}")
    from diffusers import AutoencoderKLWan, WanTransformer3DModel

    from pusa.settings import DEFAULT_NEGATIVE_PROMPT
    from pusa.training import synthetic, tiny
    from pusa.training.trainer import LORA_FILE, TrainConfig, train

    work.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    negatives = ("", DEFAULT_NEGATIVE_PROMPT)

    t0 = time.time()
    with shared_stages_lock(work):
        if not (work / "vae_base" / "config.json").is_file():
            teacher = teacher or build_teacher(work / "teacher", seed=seed)
            timings["teacher"] = time.time() - t0
            t0 = time.time()
            vae = tiny.build_vae(seed, phase_steps=vae_steps,
                                 teacher=AutoencoderKLWan.from_pretrained(str(teacher / "vae")))
            _save_atomically(vae, work / "vae_base")
    vae = AutoencoderKLWan.from_pretrained(str(work / "vae_base")).eval()
    timings["vae_base"] = time.time() - t0
    log.info("vae_base ready: reconstruction PSNR %.1f dB", tiny.vae_psnr(vae, seed=seed + 2))
    if branch_threads:
        import torch

        torch.set_num_threads(branch_threads)
        log.info("%s branch: %d PyTorch thread(s)", only, branch_threads)

    if only in ("all", "decoder"):
        t0 = time.time()
        if not (work / "vae" / "config.json").is_file():
            teacher = teacher or build_teacher(work / "teacher", seed=seed)
            sharp = tiny.sharpen_decoder(AutoencoderKLWan.from_pretrained(str(work / "vae_base")), seed,
                                         phase_steps=decoder_steps,
                                         teacher=AutoencoderKLWan.from_pretrained(str(teacher / "vae")))
            _save_atomically(sharp, work / "vae")
        timings["vae"] = time.time() - t0
        if only == "decoder":
            return timings

    t0 = time.time()
    if not (work / "data" / "metadata.jsonl").is_file():
        synthetic.make_dataset(work / "data", clips, seed=seed + 100, width=tiny.WIDTH, height=tiny.HEIGHT,
                               frames=tiny.FRAMES)
    timings["data"] = time.time() - t0

    if not (work / "base_t2v" / "model_index.json").is_file():
        teacher = teacher or build_teacher(work / "teacher", seed=seed)
        dit = WanTransformer3DModel.from_pretrained(str(teacher / "transformer"))
        tiny.write_base_model(work / "base_t2v", vae, seed=seed, transformer=dit, label=LABEL)

    t0 = time.time()
    if not (work / "vta" / LORA_FILE).is_file():
        train(TrainConfig(model=str(work / "base_t2v"), data=str(work / "data"), output=str(work / "vta"),
                          mode="lora", lora_rank=32, lora_alpha=32.0, timestep_mode="vta", cond_prob=0.5,
                          learning_rate=5e-4, lr_schedule="cosine", warmup_steps=50, steps=vta_steps,
                          batch_size=batch, caption_dropout=0.1, checkpoint_every=400, seed=seed + 1, resume=True,
                          negative_prompts=negatives))
    timings["vta"] = time.time() - t0
    if only == "dit":
        return timings

    if out.exists():
        shutil.rmtree(out)
    shutil.copytree(work / "base_t2v", out, ignore=shutil.ignore_patterns(".pusa_cache"))
    shutil.rmtree(out / "vae")  # the same encoder and latent statistics, with the sharpened decoder
    tiny.save_vae(AutoencoderKLWan.from_pretrained(str(work / "vae")), out / "vae")
    shutil.copy2(work / "vta" / LORA_FILE, out / LORA_NAME)
    tiny.write_pusa_json(out, LABEL, lora=LORA_NAME)
    t0 = time.time()
    record_eval(out)
    timings["eval"] = time.time() - t0
    size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    log.info("pusa-tiny written to %s (%.1f MB); stage seconds: %s", out, size / 1e6,
             json.dumps({k: round(v) for k, v in timings.items()}))
    return timings


EVAL_FILE = "eval.json"


def recorded_eval_config(model: Path):
    """The small, fixed ``pusa eval`` whose figures ship with the weights (``EVAL_FILE``).

    In distribution (shapes on black: i2v and keyframes, base against LoRA), out of distribution
    (i2v on every held-out kind) and the VAE per kind: what a user meets first. It takes under a
    minute on 2 cores, so tests/training/test_pusa_tiny.py recomputes it on every test run.
    """
    from pusa.training.evaluate import EvalConfig

    return EvalConfig(model=str(model), alphas=(0.0, 1.4), multipliers=(0.2,), tasks=("i2v", "keyframes"), cases=2,
                      steps=8, ood_cases=1, vae_sizes=((64, 64),), vae_cases=2)


def record_eval(model: Path) -> dict:
    """Run :func:`recorded_eval_config` on ``model`` and write its figures into ``model/EVAL_FILE``."""
    from pusa.training.evaluate import run_evaluation

    from pusa.atomic import atomic_file

    report = figures(run_evaluation(recorded_eval_config(model)))
    with atomic_file(model / EVAL_FILE) as tmp:
        tmp.write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    return report


def figures(report: dict) -> dict:
    """The measured part of an evaluation report (no timings or machine paths), rounded to what is reproducible."""
    def rounded(row: dict) -> dict:
        return {k: round(v, 2) if isinstance(v, float) else v for k, v in row.items()}

    return {"rows": [rounded(r) for r in report["rows"]], "ood_rows": [rounded(r) for r in report.get("ood_rows", [])],
            "vae_psnr": {size: rounded(kinds) for size, kinds in report.get("vae_psnr", {}).items()}}


def _save_atomically(vae, folder: Path) -> None:
    """Write a stage's VAE so that a killed build never leaves a folder that looks finished."""
    from pusa.training import tiny

    tmp = folder.with_name(folder.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tiny.save_vae(vae, tmp)
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Build the bundled pusa-tiny model (about two hours on 2 CPU cores).")
    p.add_argument("--work", default=str(Path(tempfile.gettempdir()) / "pusa-tiny-build"), help="scratch folder (data, runs); resumable")
    p.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "assets" / "pusa-tiny"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--vae-steps", type=int, nargs="+", default=None, metavar="N",
                   help="steps of each VAE phase (default: pusa.training.tiny.VAE_PHASES)")
    p.add_argument("--decoder-steps", type=int, nargs="+", default=None, metavar="N",
                   help="steps of each decoder phase (default: pusa.training.tiny.DECODER_PHASES)")
    p.add_argument("--only", choices=STAGE_GROUPS, default="all",
                   help="'decoder' or 'dit': run only that branch (both need the VAE stage; run them side by side, "
                        "then once more without --only to write the model)")
    p.add_argument("--clips", type=int, default=CLIPS)
    p.add_argument("--vta-steps", type=int, default=VTA_STEPS)
    p.add_argument("--teacher", default=None, metavar="DIR",
                   help="an existing pusa-tiny v1 folder instead of building it from commit "
                        f"{TEACHER_COMMIT[:10]} (stage 0)")
    a = p.parse_args(argv)
    from pusa.training.tiny import DECODER_PHASES, VAE_PHASES

    if a.vae_steps and len(a.vae_steps) != len(VAE_PHASES):
        p.error(f"--vae-steps: give {len(VAE_PHASES)} numbers (one per VAE phase), got {len(a.vae_steps)}")
    if a.decoder_steps and len(a.decoder_steps) != len(DECODER_PHASES):
        p.error(f"--decoder-steps: give {len(DECODER_PHASES)} numbers (one per decoder phase), "
                f"got {len(a.decoder_steps)}")
    teacher = Path(a.teacher) if a.teacher else None
    if teacher is not None and not all((teacher / part / "config.json").is_file() for part in ("vae", "transformer")):
        p.error(f"--teacher: {teacher} is not a pusa-tiny folder (expected vae/config.json and transformer/config.json)")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    import torch

    threads = torch.get_num_threads()
    branch_threads = None  # beside the other branch: half the cores each, unless the user chose
    if a.only != "all" and "OMP_NUM_THREADS" not in os.environ:
        branch_threads = max(1, threads // 2)
    try:
        build(Path(a.work), Path(a.out), seed=a.seed, vae_steps=tuple(a.vae_steps) if a.vae_steps else None,
              decoder_steps=tuple(a.decoder_steps) if a.decoder_steps else None, clips=a.clips,
              vta_steps=a.vta_steps, teacher=teacher, only=a.only, branch_threads=branch_threads)
    except TeacherUnavailable as exc:
        print(f"build_pusa_tiny: {exc}", file=sys.stderr)
        return 2
    finally:
        torch.set_num_threads(threads)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
