"""Turn any supported layout into the same components: diffusers' Wan DiT and VAE, transformers' UMT5.

The original-layout files are converted with diffusers' own key converters (DiT, VAE) and a small
key map for the UMT5 encoder. Sizes come from the checkpoint (``config.json`` where present, tensor
shapes otherwise), so the tiny test checkpoints load through exactly this code.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from pathlib import Path

import torch
from torch import nn

from pusa.errors import ModelLoadError

log = logging.getLogger(__name__)

WAN_HEAD_DIM = 128


# ----------------------------------------------------------------------------- generic helpers

def read_sharded_safetensors(folder: Path, stem: str = "diffusion_pytorch_model") -> dict[str, torch.Tensor]:
    """Read a (possibly sharded) safetensors checkpoint, checking that every shard is present."""
    from safetensors.torch import load_file

    index = folder / f"{stem}.safetensors.index.json"
    if index.is_file():
        weight_map = json.loads(index.read_text()).get("weight_map", {})
        shards = sorted(set(weight_map.values()))
        missing = [s for s in shards if not (folder / s).is_file()]
        if missing:
            raise ModelLoadError(f"{folder}: shard {missing[0]} is listed in {index.name} but missing "
                                 f"({len(missing)} of {len(shards)} shards missing)")
        state: dict[str, torch.Tensor] = {}
        for shard in shards:
            state.update(load_file(str(folder / shard)))
        absent = [k for k in weight_map if k not in state]
        if absent:
            raise ModelLoadError(f"{folder}: {len(absent)} tensors named in {index.name} are not in the shards "
                                 f"(e.g. {absent[0]!r}); a shard may be truncated or from another model")
        return state
    single = folder / f"{stem}.safetensors"
    if single.is_file():
        return load_file(str(single))
    shards = sorted(folder.glob(f"{stem}-*.safetensors"))
    if shards:
        raise ModelLoadError(f"{folder}: found {len(shards)} shards but no {stem}.safetensors.index.json")
    raise ModelLoadError(f"{folder}: no {stem}.safetensors (or sharded index) found")


def torch_load_tensors(path: Path) -> object:
    """``torch.load`` with ``weights_only=True`` (a pickle from the internet must not run code),
    memory-mapped when the file format allows it."""
    if not path.is_file():
        raise ModelLoadError(f"file not found: {path}")

    def load(mmap: bool) -> object:
        return torch.load(str(path), map_location="cpu", weights_only=True, mmap=mmap)

    try:
        try:
            return load(True)
        except RuntimeError as e:  # legacy (non-zip) pickles cannot be memory-mapped
            if "mmap" not in str(e) and "zip" not in str(e):
                raise
            return load(False)
    except Exception as e:
        raise ModelLoadError(f"{path} is not a loadable weights file; pickles are read with weights_only=True and "
                             f"may contain tensors only ({type(e).__name__}: {str(e).splitlines()[0]})") from None


def read_pickle(path: Path) -> dict[str, torch.Tensor]:
    """A state dict from a torch pickle, unwrapping a ``{"state_dict": ...}`` holder."""
    obj = torch_load_tensors(path)
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict):
        raise ModelLoadError(f"{path} does not hold a state dict")
    return obj


def load_into(model: nn.Module, state: dict[str, torch.Tensor], what: str, dtype: torch.dtype | None,
              keep_fp32: tuple[str, ...] = ()) -> nn.Module:
    """Load ``state`` into a meta-initialised ``model`` after checking names and shapes."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    if missing:
        raise ModelLoadError(f"{what}: {len(missing)} weights missing from the checkpoint (e.g. {missing[0]!r})")
    if unexpected:
        raise ModelLoadError(f"{what}: {len(unexpected)} checkpoint weights do not belong to this model "
                             f"(e.g. {unexpected[0]!r})")
    for k, t in expected.items():
        if tuple(t.shape) != tuple(state[k].shape):
            raise ModelLoadError(f"{what}: {k} has shape {tuple(state[k].shape)} in the checkpoint but the model "
                                 f"needs {tuple(t.shape)}; the config does not fit the weights")
    if dtype is not None:
        state = {k: (v if any(p in k for p in keep_fp32) else v.to(dtype)) if v.is_floating_point() else v
                 for k, v in state.items()}
    model.load_state_dict(state, strict=True, assign=True)
    return model.eval().requires_grad_(False)


# accelerate's init_empty_weights (and transformers' loading) patch module construction process-wide
# while they run: two models built at once in two threads (a service loading while another loads)
# would put meta tensors into each other. One lock serialises every model construction here.
_CONSTRUCTION = threading.Lock()


def _meta_init(cls, **config):
    from accelerate import init_empty_weights

    with _CONSTRUCTION, init_empty_weights():
        return cls(**config)


# ----------------------------------------------------------------------------- DiT

def dit_config_from_original(folder: Path, state: dict[str, torch.Tensor]) -> dict:
    """Diffusers ``WanTransformer3DModel`` kwargs from a Wan ``config.json`` or, failing that, shapes."""
    cfg_path = folder / "config.json"
    cfg = json.loads(cfg_path.read_text()) if cfg_path.is_file() else {}
    try:
        dim = int(cfg.get("dim") or state["patch_embedding.weight"].shape[0])
        in_dim = int(cfg.get("in_dim") or state["patch_embedding.weight"].shape[1])
        ffn_dim = int(cfg.get("ffn_dim") or state["blocks.0.ffn.0.weight"].shape[0])
        freq_dim = int(cfg.get("freq_dim") or state["time_embedding.0.weight"].shape[1])
        text_dim = int(state["text_embedding.0.weight"].shape[1])
        out_dim = int(cfg.get("out_dim") or state["head.head.weight"].shape[0] // 4)
    except KeyError as e:
        raise ModelLoadError(f"{folder}: the DiT checkpoint lacks {e.args[0]!r}; is this a Wan2.1 DiT?") from None
    layers = 1 + max(int(m.group(1)) for k in state if (m := re.match(r"blocks\.(\d+)\.", k)))
    if cfg.get("num_layers") and int(cfg["num_layers"]) != layers:
        raise ModelLoadError(f"{folder}: config.json says {cfg['num_layers']} layers, the weights have {layers}")
    heads = int(cfg.get("num_heads") or 0)
    if not heads:
        if dim % WAN_HEAD_DIM:
            raise ModelLoadError(f"{folder}: no config.json and dim {dim} is not a multiple of {WAN_HEAD_DIM}; "
                                 f"add config.json with num_heads")
        heads = dim // WAN_HEAD_DIM
    if dim % heads:
        raise ModelLoadError(f"{folder}: dim {dim} is not divisible by num_heads {heads}")
    return dict(patch_size=(1, 2, 2), num_attention_heads=heads, attention_head_dim=dim // heads,
                in_channels=in_dim, out_channels=out_dim, text_dim=text_dim, freq_dim=freq_dim, ffn_dim=ffn_dim,
                num_layers=layers, cross_attn_norm=True, qk_norm="rms_norm_across_heads",
                eps=float(cfg.get("eps", 1e-6)), rope_max_seq_len=1024)


def read_diffusers_folder(folder: Path) -> tuple[dict, dict[str, torch.Tensor]]:
    """``config.json`` (without diffusers' private keys) and the weights of a diffusers component folder."""
    config = json.loads(_require_file(folder / "config.json").read_text())
    return {k: v for k, v in config.items() if not k.startswith("_")}, read_sharded_safetensors(folder)


def build_model(cls: type, config: dict, state: dict[str, torch.Tensor], what: str, dtype: torch.dtype,
                keep_fp32: tuple[str, ...] = ()) -> nn.Module:
    """Instantiate ``cls`` without allocating, then load the checked ``state`` into it."""
    try:
        model = _meta_init(cls, **config)
    except TypeError as e:
        raise ModelLoadError(f"{what}: the config does not describe a {cls.__name__} ({e})") from None
    return load_into(model, state, what, dtype, keep_fp32)


def load_transformer(folder: Path, original: bool, dtype: torch.dtype) -> nn.Module:
    """The Wan DiT of one folder (original sharded layout or a diffusers ``transformer/``)."""
    from diffusers import WanTransformer3DModel
    from diffusers.loaders.single_file_utils import convert_wan_transformer_to_diffusers

    if original:
        raw = read_sharded_safetensors(folder)
        config = dit_config_from_original(folder, raw)
        state = convert_wan_transformer_to_diffusers(raw)
    else:
        config, state = read_diffusers_folder(folder)
    return build_model(WanTransformer3DModel, config, state, f"transformer ({folder})", dtype,
                       tuple(WanTransformer3DModel._keep_in_fp32_modules))


# ----------------------------------------------------------------------------- VAE

def load_vae(path: Path, dtype: torch.dtype) -> nn.Module:
    """The Wan2.1 VAE, from ``Wan2.1_VAE.pth`` or a diffusers ``vae/`` folder."""
    from diffusers import AutoencoderKLWan
    from diffusers.loaders.single_file_utils import convert_wan_vae_to_diffusers

    if path.is_file():
        raw = read_pickle(path)
        try:
            config = dict(base_dim=int(raw["encoder.conv1.weight"].shape[0]), z_dim=int(raw["conv2.weight"].shape[0]))
            # a pruned decoder (pusa.light_decoder, LightX2V-style light VAEs): its first stage has
            # dim_mult[-1] (4) times its base_dim channels
            decoder_dim = int(raw["decoder.conv1.weight"].shape[0]) // 4
        except KeyError as e:
            raise ModelLoadError(f"{path}: not a Wan VAE checkpoint (no {e.args[0]!r})") from None
        if decoder_dim != config["base_dim"]:
            config["decoder_base_dim"] = decoder_dim
        state = convert_wan_vae_to_diffusers(raw)
    else:
        config, state = read_diffusers_folder(path)
    return build_model(AutoencoderKLWan, config, state, f"VAE ({path})", dtype)


# ----------------------------------------------------------------------------- UMT5

def t5_key_map(layers: int) -> dict[str, str]:
    """Original Wan umt5-xxl encoder key -> transformers ``UMT5EncoderModel`` key."""
    m = {"token_embedding.weight": "shared.weight", "norm.weight": "encoder.final_layer_norm.weight"}
    for i in range(layers):
        o, h = f"blocks.{i}.", f"encoder.block.{i}.layer."
        m.update({
            o + "norm1.weight": h + "0.layer_norm.weight",
            o + "attn.q.weight": h + "0.SelfAttention.q.weight",
            o + "attn.k.weight": h + "0.SelfAttention.k.weight",
            o + "attn.v.weight": h + "0.SelfAttention.v.weight",
            o + "attn.o.weight": h + "0.SelfAttention.o.weight",
            o + "pos_embedding.embedding.weight": h + "0.SelfAttention.relative_attention_bias.weight",
            o + "norm2.weight": h + "1.layer_norm.weight",
            o + "ffn.gate.0.weight": h + "1.DenseReluDense.wi_0.weight",
            o + "ffn.fc1.weight": h + "1.DenseReluDense.wi_1.weight",
            o + "ffn.fc2.weight": h + "1.DenseReluDense.wo.weight",
        })
    return m


def t5_config_from_original(state: dict[str, torch.Tensor]) -> dict:
    """``UMT5Config`` kwargs read off the tensor shapes of an original umt5 encoder checkpoint."""
    try:
        vocab, d_model = state["token_embedding.weight"].shape
        d_ff = state["blocks.0.ffn.fc1.weight"].shape[0]
        buckets, heads = state["blocks.0.pos_embedding.embedding.weight"].shape
        inner = state["blocks.0.attn.q.weight"].shape[0]
    except KeyError as e:
        raise ModelLoadError(f"UMT5 checkpoint lacks {e.args[0]!r}; is this models_t5_umt5-xxl-enc-bf16.pth?") from None
    layers = 1 + max(int(m.group(1)) for k in state if (m := re.match(r"blocks\.(\d+)\.", k)))
    return dict(vocab_size=int(vocab), d_model=int(d_model), d_kv=int(inner // heads), d_ff=int(d_ff),
                num_layers=int(layers), num_heads=int(heads), relative_attention_num_buckets=int(buckets),
                relative_attention_max_distance=128, feed_forward_proj="gated-gelu", dropout_rate=0.0,
                layer_norm_epsilon=1e-6, is_encoder_decoder=False, use_cache=False, pad_token_id=0,
                eos_token_id=1, tie_word_embeddings=False)


def load_text_encoder(path: Path, dtype: torch.dtype) -> nn.Module:
    """The UMT5 encoder, from the original ``.pth`` or a diffusers ``text_encoder/`` folder."""
    from transformers import UMT5Config, UMT5EncoderModel

    if path.is_file():
        raw = read_pickle(path)
        config = UMT5Config(**t5_config_from_original(raw))
        mapping = t5_key_map(config.num_layers)
        unknown = [k for k in raw if k not in mapping]
        if unknown:
            raise ModelLoadError(f"{path}: unexpected key {unknown[0]!r} for a UMT5 encoder")
        state = {mapping[k]: v for k, v in raw.items()}
        state["encoder.embed_tokens.weight"] = state["shared.weight"]
        model = _meta_init(UMT5EncoderModel, config=config)
        return load_into(model, state, f"text encoder ({path})", dtype)
    if not (path / "config.json").is_file():
        raise ModelLoadError(f"text encoder folder {path} has no config.json")
    with _CONSTRUCTION:
        model = UMT5EncoderModel.from_pretrained(str(path), torch_dtype=dtype, local_files_only=True)
    return model.eval().requires_grad_(False)


def load_tokenizer(path: Path):
    """The tokenizer folder (``google/umt5-xxl`` or diffusers ``tokenizer/``), offline only."""
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    except Exception as e:  # transformers raises several types for a broken folder
        raise ModelLoadError(f"tokenizer at {path} cannot be loaded: {e}") from None


def _require_file(path: Path) -> Path:
    if not path.is_file():
        raise ModelLoadError(f"file not found: {path}")
    return path
