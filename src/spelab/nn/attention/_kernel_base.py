"""Shared forward/step logic of the kernel (linear-complexity) attention backends."""

from __future__ import annotations

import importlib
from typing import Any

import torch
from torch import nn

from ._checks import check_padding_mask, check_positive_int, check_qkv, check_state_args, check_step
from .causal_linear import (
    DEFAULT_CHUNK,
    LinearState,
    causal_linear_attention,
    init_linear_state,
    linear_attention,
    linear_step,
)
from .decayed_linear import decay_state, decayed_linear_attention, head_decay
from .feature_maps import padding_view


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """Half inputs are computed in float32: exp features and running sums lose too much in 16 bits."""
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


class KernelAttention(nn.Module):
    """Base for attention of the form phi(q) . phi(k): subclasses define `num_features` and `features`."""

    num_features: int

    def __init__(self, key_dim: int, eps: float = 1e-6, chunk_size: int = DEFAULT_CHUNK) -> None:
        super().__init__()
        check_positive_int(type(self).__name__, key_dim=key_dim, chunk_size=chunk_size)
        self.key_dim, self.chunk_size = key_dim, chunk_size
        if not eps > 0:
            raise ValueError(f"eps must be > 0 (it keeps the normaliser away from zero), got {eps!r}")
        self.eps = float(eps)

    def features(
        self,
        x: torch.Tensor,
        is_query: bool,
        causal: bool,
        key_padding_mask: torch.Tensor | None,
        seq_dim: int = 1,
    ) -> torch.Tensor:  # pragma: no cover - abstract
        """phi(x) on the last dim; x is (B,N,H,d) (seq_dim=1) or (B,H,N,d) (seq_dim=2)."""
        raise NotImplementedError

    def _prepare(self) -> None:
        """Hook run at the start of forward (Performer redraws its features here)."""

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
        bias: only a decay (pos_enc=decay), applied as a decayed state; a logit bias is refused."""
        check_qkv(q, k, v, self.key_dim)
        mask = check_padding_mask(key_padding_mask, q)
        log_decay = head_decay(bias, type(self).__name__)
        self._prepare()
        out_dtype = v.dtype
        cdt = compute_dtype(v.dtype)
        with _no_autocast(q.device.type):
            q, k, v = q.to(cdt), k.to(cdt), v.to(cdt)
            # non-causal: heads first, so the M-wide features are made in the layout of the
            # contractions and none of them is copied (1.5-1.7x faster fwd+bwd on CPU, bench/); the
            # causal kernels (and fla) take (B,N,H,·)
            seq_dim = 1 if causal or log_decay is not None else 2
            if seq_dim == 2:
                q, k, v = (x.transpose(1, 2) for x in (q, k, v))
            phi_q = self.features(q, True, causal, mask, seq_dim=seq_dim)
            phi_k = self.features(k, False, causal, mask, seq_dim=seq_dim)
            if mask is not None:  # padded keys get no weight: zero their features
                phi_k = phi_k.masked_fill(padding_view(mask, seq_dim), 0.0)
            if log_decay is not None:
                out = decayed_linear_attention(phi_q, phi_k, v, log_decay, causal, self.chunk_size, self.eps)
            elif causal:
                out = causal_linear_attention(phi_q, phi_k, v, chunk_size=self.chunk_size, eps=self.eps)
            else:
                out = linear_attention(phi_q, phi_k, v, eps=self.eps, heads_first=True).transpose(1, 2)
        return out.to(out_dtype)

    def init_state(
        self,
        batch_size: int,
        num_heads: int,
        value_dim: int,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> LinearState:
        """Zero (S, z) state for recurrent decoding: S (B,H,M,Dv), z (B,H,M); O(1) in the length."""
        check_state_args(batch_size, num_heads, value_dim)
        cdt = compute_dtype(dtype or torch.get_default_dtype())
        return init_linear_state(batch_size, num_heads, self.num_features, value_dim, device=device, dtype=cdt)

    def step(
        self, q_t: torch.Tensor, k_t: torch.Tensor, v_t: torch.Tensor, state: LinearState, bias: Any = None
    ) -> tuple[torch.Tensor, LinearState]:
        """One token: q_t, k_t (B,H,Dk), v_t (B,H,Dv) -> (B,H,Dv), new state. Equals the causal forward."""
        check_step(q_t, k_t, v_t, self.key_dim)
        if not isinstance(state, LinearState):
            raise ValueError(f"state must be the LinearState returned by init_state/step, got {type(state).__name__}")
        out_dtype = v_t.dtype
        cdt = state.S.dtype
        if q_t.dtype != cdt:
            q_t, k_t, v_t = q_t.to(cdt), k_t.to(cdt), v_t.to(cdt)
        with _no_autocast(q_t.device.type):
            # feature maps act on the last dim; causal=True: no look-ahead stabiliser
            phi_q = self.features(q_t, True, True, None)
            phi_k = self.features(k_t, False, True, None)
            log_decay = head_decay(bias, type(self).__name__)
            if log_decay is not None:
                state = decay_state(state, log_decay)
            out, state = linear_step(phi_q, phi_k, v_t, state, eps=self.eps)
        return out.to(out_dtype), state


class _Null:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


_NULL = _Null()


def _no_autocast(device_type: str):
    """Disable autocast only when it is on (entering the context costs ~20 us per decoding step)."""
    if torch.is_autocast_enabled(device_type):
        return torch.autocast(device_type=device_type, enabled=False)
    return _NULL


class ScanAttention(nn.Module):
    """The call shared by the scan backends (GLA, DeltaNet): the argument checks, half inputs computed
    in float32 (the cumulative log decays lose too much in 16 bits), and the zero recurrent state
    S (B, H, Dk, Dv); subclasses set `key_dim` and implement `_forward` (given the checked padding
    mask) and `step`."""

    def init_state(
        self,
        batch_size: int,
        num_heads: int,
        value_dim: int,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> torch.Tensor:
        """Zero state S (B, H, Dk, Dv)."""
        check_state_args(batch_size, num_heads, value_dim)
        return torch.zeros(
            batch_size, num_heads, self.key_dim, value_dim, device=device, dtype=dtype or torch.get_default_dtype()
        )

    def forward(
        self,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        causal: bool = False,
        key_padding_mask: torch.Tensor | None = None,
        bias: Any = None,
    ) -> torch.Tensor:
        """q, k (B,N,H,Dk); v (B,N,H,Dv) -> (B,N,H,Dv). key_padding_mask bool (B,N), True = padding."""
        check_qkv(q, k, v, self.key_dim)
        mask = check_padding_mask(key_padding_mask, q)
        cdt = compute_dtype(v.dtype)
        with _no_autocast(q.device.type):
            out = self._forward(q.to(cdt), k.to(cdt), v.to(cdt), causal, mask, bias)
        return out.to(v.dtype)

    def _forward(
        self,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        causal: bool,
        mask: torch.Tensor | None,
        bias: Any,
    ) -> torch.Tensor:
        """The backend's forward on checked inputs in the compute dtype; mask: bool (B,N) or None."""
        raise NotImplementedError


def fla_op(module: str, name: str):
    """fla-core's Triton kernel `fla.<module>.<name>` when fla-core is importable, else None (it is
    optional and CUDA only; the PyTorch chunked forms are the reference and the CPU path)."""
    try:
        return getattr(importlib.import_module(f"fla.{module}"), name)
    except Exception:  # not installed, or installed without a working Triton/CUDA
        return None
