#!/usr/bin/env bash
# Rebuild the bundled pusa-tiny model (pusa/assets/pusa-tiny) from nothing, seed 0.
# Stages: tiny Wan VAE (then its encoder frozen) -> its decoder alone | synthetic data -> T2V base
#         (pusa train --mode full --timesteps uniform) -> VTA LoRA (pusa train --mode lora --timesteps vta) -> assets.
# The scene recipe took about 2 hours on a shared 2-core machine with its DiT stages cut to 4000 + 2000 steps
# (docs/training.md); the default 8000 + 3000 adds about an hour. '--only decoder' and '--only dit' run the two
# branches side by side, then a run without --only writes the model. Use OMP_NUM_THREADS=1 on a busy machine.
# Resumable: rerun to continue.
# Usage: scripts/build_pusa_tiny.sh [--work DIR] [--seed 0] [...]   (see --help)
set -euo pipefail
cd "$(dirname "$0")/.."
exec python -m pusa.training.build_tiny "$@"
