#!/usr/bin/env bash
# Rebuild the bundled pusa-tiny model (pusa/assets/pusa-tiny) from nothing, seed 0.
# Stages: tiny Wan VAE with residual blocks (then its encoder frozen) -> its decoder alone | synthetic data
#         -> T2V base on shapes on black (pusa train --mode full --timesteps uniform) -> VTA LoRA on the scene mix
#         (pusa train --mode lora --timesteps vta) -> assets, with eval.json.
# Measured 2026-12-06 on a 2-core machine: the VAE stage 32 min on one core, then side by side the decoder
# branch (16 min, one core) and the DiT branch (46 min, two threads once the decoder branch was done): about
# 1 h 20 min. '--only decoder' and '--only dit' run the two branches side by side, then a run without --only
# writes the model (docs/training.md). Use OMP_NUM_THREADS=1 on a busy machine. Resumable: rerun to continue.
# Usage: scripts/build_pusa_tiny.sh [--work DIR] [--seed 0] [...]   (see --help)
set -euo pipefail
cd "$(dirname "$0")/.."
exec python -m pusa.training.build_tiny "$@"
