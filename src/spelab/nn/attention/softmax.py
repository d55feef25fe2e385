"""SoftmaxAttention: exact attention through torch.nn.functional.scaled_dot_product_attention.

Kernel selection matters: an explicit mask rules out the flash kernel and
the math fallback is O(N^2) memory. So masks are only built when needed:
- no padding (mask None or all False)  -> no mask (flash / cuDNN / efficient);
- causal with right padding only        -> is_causal=True, no mask: a real query t only sees keys
  <= t, which are all real, so real outputs are exact (padded rows are computed but finite);
- otherwise                             -> a boolean mask (efficient / cuDNN kernels still apply).
Rows whose keys are all padded output 0 (never NaN).
"""

from __future__ import annotations

import weakref
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from ._checks import check_padding_mask, check_positive_int, check_qkv, check_state_args, check_step
from .biased_softmax import biased_attention, biased_step


class KVCache(NamedTuple):
    """Recurrent state of softmax attention: keys (B,H,T,Dk) and values (B,H,T,Dv) seen so far."""

    k: torch.Tensor
    v: torch.Tensor


_layout_cache: tuple[weakref.ref, int, tuple[bool, bool]] | None = None


def _padding_layout(mask: torch.Tensor) -> tuple[bool, bool]:
    """(any padding, padding only at the end of each row), with one host sync per mask tensor.

    The decision is cached by tensor identity and version: a model passes the same mask to every
    layer, so only the first layer waits for the device.
    """
    global _layout_cache
    try:
        version = mask._version
    except RuntimeError:  # inference tensors track no version: decide afresh, do not cache
        version = None
    cached = _layout_cache
    if version is not None and cached is not None and cached[0]() is mask and cached[1] == version:
        return cached[2]
    any_pad = mask.any()
    if mask.shape[1] > 1:
        right_only = (mask[:, 1:] >= mask[:, :-1]).all()
    else:
        right_only = torch.ones((), dtype=torch.bool, device=mask.device)
    flags = tuple(bool(x) for x in torch.stack([any_pad, right_only]).tolist())
    if version is not None:
        _layout_cache = (weakref.ref(mask), version, flags)
    return flags  # type: ignore[return-value]


class SoftmaxAttention(nn.Module):
    """softmax(q k^T / sqrt(key_dim)) v with dropout on the weights while training.

    Args:
        key_dim: dimension of the queries/keys this backend receives (sets the temperature).
        dropout: attention-weight dropout probability (training only).
    """

    name = "softmax"  # its option in conf/attention/ (pos_enc schemes list the options that take them)

    def __init__(self, key_dim: int, dropout: float = 0.0) -> None:
        super().__init__()
        check_positive_int(type(self).__name__, key_dim=key_dim)
        self.key_dim = key_dim
        if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be a float in [0, 1), got {dropout!r}")
        self.dropout = float(dropout)
        self.scale = key_dim**-0.5

    def forward(
        self,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        causal: bool = False,
        key_padding_mask: torch.Tensor | None = None,
        bias: Any = None,
    ) -> torch.Tensor:
        """q, k (B,N,H,Dk); v (B,N,H,Dv) -> (B,N,H,Dv). key_padding_mask bool (B,N), True = padding.
        bias: a logit-bias scheme's `attention_bias()` (ALiBi, KERPLE, FIRE, decay), added to the logits."""
        check_qkv(q, k, v, self.key_dim)
        mask = check_padding_mask(key_padding_mask, q)
        p = self.dropout if self.training else 0.0
        qh, kh, vh = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)  # (B,H,N,D)
        if bias is not None:
            return biased_attention(qh, kh, vh, mask, causal, bias, self.scale, p).transpose(1, 2)

        attn_mask, empty_rows = None, None
        if mask is not None:
            any_pad, right_only = _padding_layout(mask)
            if not any_pad or (causal and right_only):
                mask = None
        if mask is not None:
            n = q.shape[1]
            allowed = ~mask[:, None, None, :]  # (B,1,1,N)
            if causal:
                allowed = allowed & torch.ones(n, n, dtype=torch.bool, device=q.device).tril()
            empty_rows = ~allowed.any(dim=-1, keepdim=True)  # (B,1,Nq|1,1): no key to attend to
            # let empty rows attend everywhere (finite), then zero them below
            attn_mask = allowed | empty_rows
            causal = False  # folded into the mask
        out = F.scaled_dot_product_attention(
            qh, kh, vh, attn_mask=attn_mask, dropout_p=p, is_causal=causal, scale=self.scale
        )
        if empty_rows is not None:
            out = out.masked_fill(empty_rows, 0.0)
        return out.transpose(1, 2)

    def init_state(
        self,
        batch_size: int,
        num_heads: int,
        value_dim: int,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> KVCache:
        """Empty K/V cache; it grows by one position per `step`."""
        check_state_args(batch_size, num_heads, value_dim)
        dtype = dtype or torch.get_default_dtype()
        return KVCache(
            k=torch.empty(batch_size, num_heads, 0, self.key_dim, device=device, dtype=dtype),
            v=torch.empty(batch_size, num_heads, 0, value_dim, device=device, dtype=dtype),
        )

    def step(
        self, q_t: torch.Tensor, k_t: torch.Tensor, v_t: torch.Tensor, state: KVCache, bias: Any = None
    ) -> tuple[torch.Tensor, KVCache]:
        """One token: q_t, k_t (B,H,Dk), v_t (B,H,Dv) -> (B,H,Dv) attending to every cached position."""
        check_step(q_t, k_t, v_t, self.key_dim)
        if not isinstance(state, KVCache):
            raise ValueError(f"state must be the KVCache returned by init_state/step, got {type(state).__name__}")
        kc = torch.cat([state.k, k_t.unsqueeze(2).to(state.k.dtype)], dim=2)
        vc = torch.cat([state.v, v_t.unsqueeze(2).to(state.v.dtype)], dim=2)
        if bias is not None:
            out = biased_step(q_t.unsqueeze(2).to(kc.dtype), kc, vc, bias, self.scale)
            return out.squeeze(2).to(v_t.dtype), KVCache(kc, vc)
        out = F.scaled_dot_product_attention(q_t.unsqueeze(2).to(kc.dtype), kc, vc, scale=self.scale)
        return out.squeeze(2).to(v_t.dtype), KVCache(kc, vc)

    def extra_repr(self) -> str:
        return f"key_dim={self.key_dim}, dropout={self.dropout}"
