"""Prompt -> UMT5 embeddings, one function for the engine and the trainer.

The DiT must train on exactly the context it sees at inference: whitespace collapsed, padded and
truncated to the model's ``text_len``, embeddings past each prompt's real length zeroed (as Wan does).
"""

from __future__ import annotations

from typing import Any

import torch


@torch.no_grad()
def encode_prompts(tokenizer: Any, text_encoder: torch.nn.Module, prompts: list[str], text_len: int,
                   device: torch.device | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``(embeddings (B, text_len, D) float32 zeroed past each prompt, lengths (B,))`` on the encoder's device."""
    tok = tokenizer([" ".join(p.split()) for p in prompts], padding="max_length", max_length=text_len,
                    truncation=True, add_special_tokens=True, return_attention_mask=True, return_tensors="pt")
    device = device or next(text_encoder.parameters()).device
    ids, mask = tok.input_ids.to(device), tok.attention_mask.to(device)
    emb = text_encoder(ids, mask).last_hidden_state.float()
    return emb * mask.unsqueeze(-1).to(emb.dtype), tok.attention_mask.sum(dim=1)
