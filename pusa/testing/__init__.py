"""Tiny models in the real on-disk layouts, so tests and benchmarks go through the real loaders."""
