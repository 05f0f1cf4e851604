"""The allowed values of every speed option, in one import-light place (the CLI and the engine share them)."""

MODULATION_MODES = ("per_frame", "per_token")
WEIGHT_MODES = ("bf16", "fp8")
CACHE_MODES = ("none", "fbcache", "taylorseer", "magcache")
ATTENTION_MODES = ("auto", "sdpa", "flash", "flash3", "sage")
PRESET_NAMES = ("none", "lightx2v")
