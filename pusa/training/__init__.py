"""VTA (Pusa) training: synthetic data, the trainer behind `pusa train`, the pusa-tiny build and `pusa eval`.

Modules: ``synthetic`` (moving-shape clips with captions and true trajectories), ``data`` (caption
files, cached latents and text embeddings), ``vta`` (per-frame timesteps and loss weights),
``trainer`` (accelerate loop, checkpoints, LoRA export), ``tiny`` + ``build_tiny`` (the bundled
model), ``evaluate`` (`pusa eval`), ``cli`` (argparse front-ends).
"""
