"""Write tiny, deterministic Wan models in each real checkpoint layout (DESIGN.md §4).

The writers start from diffusers/transformers modules of reduced width, then store them exactly
as the real releases are stored: original Wan key names and shards with an index, torch pickles
for the T5 and VAE, or the diffusers folder layout. Loading them back therefore exercises the same
conversion code as the 14B checkpoints.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from pusa.loading.components import t5_key_map
from pusa.loading.layout import T5_FILE, TOKENIZER_DIR, VAE_FILE
from pusa.loading.lora import PUSA_TARGETS
from pusa.training.tiny import make_text_encoder, make_transformer, make_vae, umt5_style_tokenizer

TINY_DIT = dict(patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=16, in_channels=16, out_channels=16,
                text_dim=32, freq_dim=32, ffn_dim=64, num_layers=2, cross_attn_norm=True,
                qk_norm="rms_norm_across_heads", eps=1e-6, rope_max_seq_len=1024)
TINY_T5 = dict(d_model=32, d_kv=8, d_ff=64, num_layers=2, num_heads=4, relative_attention_num_buckets=32)
TINY_VAE_BASE_DIM = 8
TINY_TEXT_LEN = 64
TINY_DEFAULTS = dict(width=64, height=64, frames=9)


def _seeded(seed: int):
    g = torch.Generator().manual_seed(seed)
    return g


def randomize_(model: nn.Module, seed: int, std: float = 0.05) -> nn.Module:
    """Overwrite every float parameter with seeded noise so no weight is left at a zero init."""
    g = _seeded(seed)
    with torch.no_grad():
        for name, p in sorted(model.named_parameters()):
            if not p.is_floating_point():
                continue
            if "norm" in name and p.ndim == 1 or name.endswith("gamma"):
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(std * torch.randn(p.shape, generator=g))
    return model


def make_tiny_dit(seed: int = 0, **overrides) -> nn.Module:
    return randomize_(make_transformer(seed, {**TINY_DIT, **overrides}), seed).eval()


def make_tiny_vae(seed: int = 0, **overrides) -> nn.Module:
    """The test VAE; ``overrides`` (e.g. z_dim, scale_factor_spatial) shape other model families."""
    vae = make_vae(seed, TINY_VAE_BASE_DIM, **overrides)
    return randomize_(vae, seed, std=0.1).eval()


def make_tiny_tokenizer():
    """A byte-level tokenizer: any prompt a test types gets real ids."""
    from tokenizers import decoders, models, pre_tokenizers

    vocab = {"<pad>": 0, "</s>": 1, "<unk>": 2}
    for ch in sorted(pre_tokenizers.ByteLevel.alphabet()):
        vocab[ch] = len(vocab)
    return umt5_style_tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="<unk>"),
                                pre_tokenizers.ByteLevel(add_prefix_space=False), TINY_TEXT_LEN,
                                decoder=decoders.ByteLevel())


def make_tiny_t5(vocab_size: int, seed: int = 0) -> nn.Module:
    config = dict(**TINY_T5, feed_forward_proj="gated-gelu", dropout_rate=0.0, is_encoder_decoder=False,
                  use_cache=False, pad_token_id=0, eos_token_id=1, tie_word_embeddings=False)
    return randomize_(make_text_encoder(vocab_size, seed, config), seed, std=0.3).eval()


# ----------------------------------------------------------------------------- key inversions

def dit_to_original(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Diffusers Wan DiT names -> original Wan names (inverse of diffusers' converter)."""
    renames = [
        ("condition_embedder.time_embedder.linear_1", "time_embedding.0"),
        ("condition_embedder.time_embedder.linear_2", "time_embedding.2"),
        ("condition_embedder.text_embedder.linear_1", "text_embedding.0"),
        ("condition_embedder.text_embedder.linear_2", "text_embedding.2"),
        ("condition_embedder.time_proj", "time_projection.1"),
        ("attn2", "cross_attn"), ("attn1", "self_attn"),
        (".to_out.0.", ".o."), (".to_q.", ".q."), (".to_k.", ".k."), (".to_v.", ".v."),
        ("ffn.net.0.proj", "ffn.0"), ("ffn.net.2", "ffn.2"), ("proj_out", "head.head"),
        ("norm2", "norm__tmp"), ("norm3", "norm2"), ("norm__tmp", "norm3"),
    ]
    out = {}
    for key, value in state.items():
        new = key
        for a, b in renames:
            new = new.replace(a, b)
        if new == "scale_shift_table":
            new = "head.modulation"
        new = new.replace(".scale_shift_table", ".modulation")
        out[new] = value
    return out


def vae_to_original(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Diffusers ``AutoencoderKLWan`` names -> ``Wan2.1_VAE.pth`` names (inverse of diffusers' converter)."""
    res = {"norm1.gamma": "residual.0.gamma", "conv1": "residual.2", "norm2.gamma": "residual.3.gamma",
           "conv2": "residual.6", "conv_shortcut": "shortcut"}

    def resnet_part(rest: str) -> str:
        for a, b in res.items():
            if rest.startswith(a):
                return b + rest[len(a):]
        return rest

    out = {}
    for key, value in state.items():
        k = key
        for side in ("encoder", "decoder"):
            k = k.replace(f"{side}.conv_in.", f"{side}.conv1.").replace(f"{side}.norm_out.gamma", f"{side}.head.0.gamma")
            k = k.replace(f"{side}.conv_out.", f"{side}.head.2.")
            for i, j in ((0, 0), (1, 2)):
                pre = f"{side}.mid_block.resnets.{i}."
                if k.startswith(pre):
                    k = f"{side}.middle.{j}." + resnet_part(k[len(pre):])
            k = k.replace(f"{side}.mid_block.attentions.0.", f"{side}.middle.1.")
        if k.startswith("quant_conv."):
            k = k.replace("quant_conv.", "conv1.")
        elif k.startswith("post_quant_conv."):
            k = k.replace("post_quant_conv.", "conv2.")
        elif k.startswith("encoder.down_blocks."):
            idx, rest = k[len("encoder.down_blocks."):].split(".", 1)
            k = f"encoder.downsamples.{idx}." + resnet_part(rest)
        elif k.startswith("decoder.up_blocks."):
            block, kind, rest = k[len("decoder.up_blocks."):].split(".", 2)
            b = int(block)
            if kind == "resnets":
                r, rest2 = rest.split(".", 1)
                k = f"decoder.upsamples.{4 * b + int(r)}." + resnet_part(rest2)
            elif kind == "upsamplers":
                k = f"decoder.upsamples.{4 * b + 3}." + rest.split(".", 1)[1]
        out[k] = value
    return out


def t5_to_original(state: dict[str, torch.Tensor], layers: int) -> dict[str, torch.Tensor]:
    inverse = {v: k for k, v in t5_key_map(layers).items()}
    return {inverse[k]: v for k, v in state.items() if k in inverse}


# ----------------------------------------------------------------------------- writers

def _save_sharded(state: dict[str, torch.Tensor], folder: Path, shards: int, stem: str = "diffusion_pytorch_model"):
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    keys = sorted(state)
    if shards <= 1:
        save_file({k: state[k].contiguous() for k in keys}, str(folder / f"{stem}.safetensors"))
        return
    weight_map = {}
    per = -(-len(keys) // shards)
    for i in range(shards):
        name = f"{stem}-{i + 1:05d}-of-{shards:05d}.safetensors"
        part = keys[i * per:(i + 1) * per]
        save_file({k: state[k].contiguous() for k in part}, str(folder / name))
        weight_map.update({k: name for k in part})
    total = sum(t.numel() * t.element_size() for t in state.values())
    (folder / f"{stem}.safetensors.index.json").write_text(
        json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map}, indent=1))


def _original_dit_config(cfg: dict, text_len: int) -> dict:
    heads = cfg["num_attention_heads"]
    dim = heads * cfg["attention_head_dim"]
    return {"_class_name": "WanModel", "dim": dim, "eps": cfg["eps"], "ffn_dim": cfg["ffn_dim"],
            "freq_dim": cfg["freq_dim"], "in_dim": cfg["in_channels"], "model_type": "t2v", "num_heads": heads,
            "num_layers": cfg["num_layers"], "out_dim": cfg["out_channels"], "text_len": text_len}


def write_original_dit(model: nn.Module, folder: Path, shards: int = 2, text_len: int = TINY_TEXT_LEN) -> None:
    """Store a diffusers Wan DiT as the original release does: sharded safetensors + index + config.json."""
    state = dit_to_original({k: v.detach().clone() for k, v in model.state_dict().items()})
    _save_sharded(state, folder, shards)
    (folder / "config.json").write_text(json.dumps(_original_dit_config(dict(model.config), text_len), indent=1))


def _write_text_and_vae_original(root: Path, seed: int) -> None:
    tok = make_tiny_tokenizer()
    tok.save_pretrained(str(root / TOKENIZER_DIR))
    t5 = make_tiny_t5(len(tok), seed + 1)
    torch.save(t5_to_original(t5.state_dict(), t5.config.num_layers), str(root / T5_FILE))
    vae = make_tiny_vae(seed + 2)
    torch.save(vae_to_original(vae.state_dict()), str(root / VAE_FILE))


def _write_meta(root: Path, **extra) -> None:
    meta = {"label": "tiny random Wan (test model: its output is noise)", **TINY_DEFAULTS, "text_len": TINY_TEXT_LEN,
            **extra}
    (root / "pusa.json").write_text(json.dumps(meta, indent=1))


def write_tiny_wan21_original(root: str | Path, seed: int = 0, shards: int = 2) -> Path:
    """A tiny Wan2.1-T2V folder in the original layout (as ``Wan2.1-T2V-14B/`` is stored)."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    write_original_dit(make_tiny_dit(seed), root, shards)
    _write_text_and_vae_original(root, seed)
    _write_meta(root)
    return root


def write_tiny_wan22_original(root: str | Path, seed: int = 0) -> Path:
    """A tiny Wan2.2-T2V-A14B folder: ``high_noise_model/`` + ``low_noise_model/`` + shared T5/VAE."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    write_original_dit(make_tiny_dit(seed), root / "high_noise_model", 2)
    write_original_dit(make_tiny_dit(seed + 10), root / "low_noise_model", 2)
    _write_text_and_vae_original(root, seed)
    _write_meta(root)
    return root


# Wan2.2-TI2V-5B's shape: a 48-channel VAE with 16x spatial stride (2x2 patchify inside the VAE).
TI2V_5B_VAE = dict(z_dim=48, in_channels=12, out_channels=12, is_residual=True, patch_size=2, scale_factor_spatial=16,
                   decoder_base_dim=16, latents_mean=[0.0] * 48, latents_std=[1.0] * 48)
TI2V_5B_DIT = dict(in_channels=48, out_channels=48)


def write_tiny_diffusers(root: str | Path, seed: int = 0, wan22: bool = False, ti2v_5b: bool = False) -> Path:
    """A tiny model in the diffusers layout (``model_index.json`` + component folders);
    ``ti2v_5b`` shapes it like Wan2.2-TI2V-5B (48 latent channels, VAE stride 4x16x16)."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    dit_shape = TI2V_5B_DIT if ti2v_5b else {}
    make_tiny_dit(seed, **dit_shape).save_pretrained(str(root / "transformer"))
    if wan22:
        make_tiny_dit(seed + 10, **dit_shape).save_pretrained(str(root / "transformer_2"))
    tok = make_tiny_tokenizer()
    tok.save_pretrained(str(root / "tokenizer"))
    make_tiny_t5(len(tok), seed + 1).save_pretrained(str(root / "text_encoder"))
    make_tiny_vae(seed + 2, **(TI2V_5B_VAE if ti2v_5b else {})).save_pretrained(str(root / "vae"))
    index = {"_class_name": "WanPipeline", "_diffusers_version": "0.33.0",
             "scheduler": ["diffusers", "UniPCMultistepScheduler"], "text_encoder": ["transformers", "UMT5EncoderModel"],
             "tokenizer": ["transformers", "T5TokenizerFast"], "transformer": ["diffusers", "WanTransformer3DModel"],
             "vae": ["diffusers", "AutoencoderKLWan"]}
    if wan22:
        index["transformer_2"] = ["diffusers", "WanTransformer3DModel"]
        index["boundary_ratio"] = 0.875
    (root / "model_index.json").write_text(json.dumps(index, indent=1))
    _write_meta(root)
    return root


# ----------------------------------------------------------------------------- LoRA files

_ORIGINAL_TARGETS = {"attn1.to_q": "self_attn.q", "attn1.to_k": "self_attn.k", "attn1.to_v": "self_attn.v",
                     "attn1.to_out.0": "self_attn.o", "attn2.to_q": "cross_attn.q", "attn2.to_k": "cross_attn.k",
                     "attn2.to_v": "cross_attn.v", "attn2.to_out.0": "cross_attn.o", "ffn.net.0.proj": "ffn.0",
                     "ffn.net.2": "ffn.2"}


def make_lora_tensors(model: nn.Module, rank: int = 4, seed: int = 0, std: float = 0.05
                      ) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Random (A, B) per LoRA target of ``model``, keyed by diffusers module name."""
    g = _seeded(seed)
    modules = dict(model.named_modules())
    out = {}
    for name in sorted(modules):
        if any(name.endswith(t) for t in PUSA_TARGETS) and isinstance(modules[name], nn.Linear):
            lin = modules[name]
            out[name] = (std * torch.randn(rank, lin.in_features, generator=g),
                         std * torch.randn(lin.out_features, rank, generator=g))
    return out


def named_lora_state_dict(tensors: dict[str, tuple[torch.Tensor, torch.Tensor]], style: str,
                    alpha: float | None = None) -> dict[str, torch.Tensor]:
    """Name LoRA tensors in one of the styles seen in the wild.

    ``pusa``: ``blocks.0.self_attn.q.lora_A.default.weight`` (Pusa V1 ``pusa_v1.pt``);
    ``original``: ``diffusion_model.blocks.0.self_attn.q.lora_down.weight`` + ``.alpha``;
    ``diffusers``: ``transformer.blocks.0.attn1.to_q.lora_A.weight``.
    """
    out = {}
    for name, (a, b) in tensors.items():
        block, target = name.split(".", 2)[:2], name.split(".", 2)[2]
        orig = f"{block[0]}.{block[1]}.{_ORIGINAL_TARGETS[target]}"
        if style == "pusa":
            out[f"{orig}.lora_A.default.weight"], out[f"{orig}.lora_B.default.weight"] = a, b
        elif style == "original":
            out[f"diffusion_model.{orig}.lora_down.weight"] = a
            out[f"diffusion_model.{orig}.lora_up.weight"] = b
            out[f"diffusion_model.{orig}.alpha"] = torch.tensor(float(alpha if alpha is not None else a.shape[0]))
        elif style == "diffusers":
            out[f"transformer.{name}.lora_A.weight"], out[f"transformer.{name}.lora_B.weight"] = a, b
        else:
            raise ValueError(f"unknown LoRA style {style!r}")
    return out


def write_lora(path: str | Path, model: nn.Module, style: str = "pusa", rank: int = 4, seed: int = 0,
               wrapped: bool = False, alpha: float | None = None) -> Path:
    """Write a random LoRA for ``model`` in ``style``; ``.pt`` files are torch pickles like ``pusa_v1.pt``."""
    path = Path(path)
    state = named_lora_state_dict(make_lora_tensors(model, rank, seed), style, alpha)
    if path.suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    else:
        torch.save({"state_dict": state} if wrapped else state, str(path))
    return path
