"""Per-frame modulation: the time embedding and the six modulation vectors once per latent frame.

Pusa gives every latent frame its own timestep. diffusers' ``WanTransformer3DModel`` accepts a
timestep per token and then runs the time MLP and keeps ``(tokens, 6, dim)`` modulation tensors in
every block (float32 inside the block): at 720p x 81 frames that is 75,600 rows where 21 distinct
ones exist, about 15 GiB of activation peak. Here the time embedding runs on one row per latent
frame and each block broadcasts its frame's modulation over that frame's tokens (the tokens are
frame-major, so a frame is a contiguous run of ``H*W/4`` tokens).

Composition, not a fork: two diffusers ``ModelHook``s with their own ``new_forward`` are installed
on the loaded model (one on the DiT, one on each ``WanTransformerBlock``). They take over only when
the timestep has one value per latent frame (``(B, F)`` with ``F`` smaller than the token count);
a scalar or per-token timestep runs diffusers' own forward untouched. They are installed before any
other hook (caches, offloading, casting), so those wrap ours and keep working; the block hook
calls the block's own submodules (norms, attentions, FFN).

Context parallelism (diffusers' plan splits ``timestep`` along dim 1 and the tokens at the first
block) keeps working when the number of ranks divides the number of latent frames: each rank then
holds whole frames and their timesteps, so tokens-per-frame is the same on every rank.
"""

from __future__ import annotations

import torch
from diffusers.hooks import HookRegistry, ModelHook

from pusa.speed.names import MODULATION_MODES  # noqa: F401 (re-exported)
_DIT_HOOK = "pusa_per_frame_dit"
_BLOCK_HOOK = "pusa_per_frame_block"


def check_modulation(mode: str) -> str:
    from pusa.errors import InputError

    if mode not in MODULATION_MODES:
        raise InputError(f"modulation: {mode!r} is not allowed; expected one of {', '.join(MODULATION_MODES)}")
    return mode


def _frames(x: torch.Tensor, frames: int) -> torch.Tensor:
    """(B, S, D) -> (B, F, S/F, D), a view; the token count must be whole frames."""
    if x.shape[1] % frames:
        raise ValueError(f"per-frame modulation: {x.shape[1]} tokens are not {frames} whole frames")
    return x.unflatten(1, (frames, -1))


class PerFrameBlockHook(ModelHook):
    """``WanTransformerBlock.forward`` with ``temb`` of shape ``(B, F, 6, D)``, one row per latent frame.

    Same operations in the same order and dtypes as diffusers' block; only the broadcast differs
    (``(B, F, 1, D)`` over ``(B, F, T, D)`` instead of a materialised ``(B, F*T, D)``). Being the
    innermost hook it also counts the block's real runs (a step cache that skips it never calls it).
    """

    def __init__(self) -> None:
        super().__init__()
        self.runs = 0

    def new_forward(self, block: torch.nn.Module, hidden_states: torch.Tensor, encoder_hidden_states: torch.Tensor,
                    temb: torch.Tensor, rotary_emb: torch.Tensor) -> torch.Tensor:
        self.runs += 1
        if temb.ndim != 4 or temb.shape[1] == hidden_states.shape[1]:
            return self.fn_ref.original_forward(hidden_states, encoder_hidden_states, temb, rotary_emb)
        frames = temb.shape[1]
        mods = (block.scale_shift_table.unsqueeze(0) + temb.float()).unsqueeze(2)  # (B, F, 1, 6, D)
        shift, scale, gate, c_shift, c_scale, c_gate = mods.unbind(3)  # each (B, F, 1, D)
        x = hidden_states

        norm = (_frames(block.norm1(x.float()), frames) * (1 + scale) + shift).flatten(1, 2).type_as(x)
        attn = block.attn1(norm, None, None, rotary_emb)
        x = (_frames(x.float(), frames) + _frames(attn, frames) * gate).flatten(1, 2).type_as(x)

        norm = block.norm2(x.float()).type_as(x)
        x = x + block.attn2(norm, encoder_hidden_states, None, None)

        norm = (_frames(block.norm3(x.float()), frames) * (1 + c_scale) + c_shift).flatten(1, 2).type_as(x)
        ff = block.ffn(norm)
        return (_frames(x.float(), frames) + _frames(ff.float(), frames) * c_gate).flatten(1, 2).type_as(x)


class PerFrameDiTHook(ModelHook):
    """``WanTransformer3DModel.forward`` for a ``(B, F)`` timestep: the time embedding on ``F`` rows.

    Patch embedding, rotary embedding, text embedding, blocks and the output projection are the
    model's own modules; the output modulation is broadcast per frame like the blocks'.
    """

    def new_forward(self, dit: torch.nn.Module, hidden_states: torch.Tensor, timestep: torch.Tensor,
                    encoder_hidden_states: torch.Tensor, encoder_hidden_states_image: torch.Tensor | None = None,
                    return_dict: bool = True, attention_kwargs: dict | None = None):
        b, _, f, h, w = hidden_states.shape
        p_t, p_h, p_w = dit.config.patch_size
        pf, ph, pw = f // p_t, h // p_h, w // p_w
        if timestep.ndim != 2 or timestep.shape[1] == pf * ph * pw:
            return self.fn_ref.original_forward(hidden_states, timestep, encoder_hidden_states,
                                                encoder_hidden_states_image, return_dict, attention_kwargs)
        frames = timestep.shape[1]
        rotary_emb = dit.rope(hidden_states)
        x = dit.patch_embedding(hidden_states).flatten(2).transpose(1, 2).contiguous()
        temb, proj, context, context_image = dit.condition_embedder(
            timestep.flatten(), encoder_hidden_states, encoder_hidden_states_image, timestep_seq_len=frames)
        proj = proj.unflatten(2, (6, -1))  # (B, F, 6, D)
        if context_image is not None:
            context = torch.concat([context_image, context], dim=1)
        checkpointing = torch.is_grad_enabled() and dit.gradient_checkpointing
        for block in dit.blocks:
            if checkpointing:
                x = dit._gradient_checkpointing_func(block, x, context, proj, rotary_emb)
            else:
                x = block(x, context, proj, rotary_emb)

        table = dit.scale_shift_table.unsqueeze(0).to(temb.device)  # (1, 1, 2, D)
        shift, scale = (table + temb.unsqueeze(2)).unsqueeze(2).to(x.device).unbind(3)  # (B, F, 1, D)
        x = (_frames(dit.norm_out(x.float()), frames) * (1 + scale) + shift).flatten(1, 2).type_as(x)
        x = dit.proj_out(x)
        x = x.reshape(b, pf, ph, pw, p_t, p_h, p_w, -1).permute(0, 7, 1, 4, 2, 5, 3, 6)
        out = x.flatten(6, 7).flatten(4, 5).flatten(2, 3)
        if not return_dict:
            return (out,)
        from diffusers.models.modeling_outputs import Transformer2DModelOutput

        return Transformer2DModelOutput(sample=out)


def has_per_frame(dit: torch.nn.Module) -> bool:
    registry = getattr(dit, "_diffusers_hook", None)
    return registry is not None and registry.get_hook(_DIT_HOOK) is not None


def block_runs(dit: torch.nn.Module) -> int | None:
    """How often the DiT's last block really ran (None without the per-frame hooks)."""
    registry = getattr(dit.blocks[-1], "_diffusers_hook", None)
    hook = registry.get_hook(_BLOCK_HOOK) if registry is not None else None
    return hook.runs if hook is not None else None


def install_per_frame(dit: torch.nn.Module) -> torch.nn.Module:
    """Install the per-frame path on a loaded Wan DiT (idempotent). Must come before any other
    diffusers hook on the DiT or its blocks, so caches and offloading wrap it."""
    if has_per_frame(dit):
        return dit
    for module in [dit, *dit.blocks]:
        registry = getattr(module, "_diffusers_hook", None)
        if registry is not None and registry.hooks:
            raise RuntimeError(f"install per-frame modulation before other hooks; found {list(registry.hooks)}")
    for block in dit.blocks:
        HookRegistry.check_if_exists_or_initialize(block).register_hook(PerFrameBlockHook(), _BLOCK_HOOK)
    HookRegistry.check_if_exists_or_initialize(dit).register_hook(PerFrameDiTHook(), _DIT_HOOK)
    return dit


def frame_timesteps(t: torch.Tensor, mode: str, tokens_per_frame: int) -> torch.Tensor:
    """What the DiT is given for per-frame timesteps ``t`` (F,): one scalar when every frame
    agrees, else ``(1, F)`` (per_frame) or each frame's value repeated over its tokens (per_token,
    frame-major: ``repeat_interleave``, never ``repeat``)."""
    if bool((t == t[0]).all()):
        return t[:1]
    if mode == "per_frame":
        return t[None]
    return t.repeat_interleave(tokens_per_frame)[None]
