#!/usr/bin/env bash
# Rebuild the bundled pusa-tiny model (pusa/assets/pusa-tiny) from nothing, seed 0.
# Stages: tiny Wan VAE -> synthetic data -> T2V base (pusa train --mode full --timesteps uniform)
#         -> VTA LoRA (pusa train --mode lora --timesteps vta) -> assets.
# The first recipe took 55 minutes on 2 idle CPU cores; the scene recipe's longer VAE stage adds an estimated
# 15 (not yet run end to end; docs/training.md). Use OMP_NUM_THREADS=1 on a busy machine. Resumable: rerun to continue.
# Usage: scripts/build_pusa_tiny.sh [--work DIR] [--seed 0] [...]   (see --help)
set -euo pipefail
cd "$(dirname "$0")/.."
exec python -m pusa.training.build_tiny "$@"
