"""Speed and memory options for one GPU, each composed over diffusers' own modules and hooks.

``modulation``  per-frame time embedding and modulation (a block forward of ours, not a fork)
``weights``     fp8 storage with bf16/fp32 compute (diffusers' layerwise casting)
``caching``     step caches (first-block, TaylorSeer, MagCache) and the skipped-forward count
``magcache``    MagCache's ratios: calibrated per checkpoint, planned per request and expert
``kernels``     attention backend and regional compilation
``presets``     named recipes (the 4-step LightX2V distillation)
``restore``     exact LoRA re-merge from the checkpoint's memory-mapped weights
"""
