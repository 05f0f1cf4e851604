#!/usr/bin/env bash
# Rebuild the bundled pusa-tiny model (pusa/assets/pusa-tiny) from nothing, seed 0.
# Stages: 0. the teacher, pusa-tiny v1, by its own commit's recipe (84f5343, taken from this clone's git
#         history; --teacher DIR uses a v1 folder instead): VAE and T2V base DiT on shapes on black (55 min)
#         -> 1. a residual Wan VAE for any picture whose latents of shapes on black are v1's (43 min, two threads)
#         -> side by side: 2. its decoder alone (24 min, one core, then two) | 3.-5. the LoRA's data, v1's DiT with the new
#         VAE, the VTA LoRA on the scene mix (pusa train --mode lora --timesteps vta; 20 min, one core)
#         -> the model, with eval.json. Measured 2026-12-06 on a 2-core machine: about 2 h in all.
# '--only decoder' and '--only dit' run the two branches side by side (start both at once: the second waits for
# stages 0-1; each branch then takes half the cores), then a run without --only writes the model
# (docs/training.md). Use OMP_NUM_THREADS=1 on a busy machine. Resumable: rerun to continue.
# Usage: scripts/build_pusa_tiny.sh [--work DIR] [--seed 0] [...]   (see --help)
set -euo pipefail
cd "$(dirname "$0")/.."
exec python -m pusa.training.build_tiny "$@"
