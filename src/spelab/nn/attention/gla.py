"""GatedLinearAttention (Yang et al. 2024): linear attention with a data-dependent, per-channel decay.

S_t = diag(alpha_t) S_{t-1} + k_t v_t^T, o_t = RMSNorm(q_t S_t / sqrt(Dk)) per head, with
alpha_t = sigmoid(W k_t + b)^(1/tau) (tau = 16, the paper's gate temperature). The backend only sees
q, k, v, so the gate is read from the key. Bidirectional: a forward and a backward scan, summed, minus
the diagonal (exact: every pair weighted by the gates between them). pos_enc=decay multiplies the
gates by the head's fixed gamma. fla's chunk_gla is used when fla-core is importable and the tensors
are on CUDA (not exercised on CPU-only machines); the pure-PyTorch chunked form otherwise.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ._checks import check_positive_int, check_step
from ._kernel_base import ScanAttention, fla_op
from .decayed_linear import head_decay
from .gated_scan import DEFAULT_CHUNK, bidirectional_gated_scan, chunk_gated_scan


class GatedLinearAttention(ScanAttention):
    """Args: key_dim (the width of q and k per head: R after SPE, else head_dim),
    gate_temperature tau, chunk_size of the chunked form (GLA's gates are per channel, so the
    PyTorch form caps it at gated_scan.PER_CHANNEL_CHUNK)."""

    name = "gla"  # its option in conf/attention/ (pos_enc schemes list the options that take them)

    def __init__(self, key_dim: int, gate_temperature: float = 16.0, chunk_size: int = DEFAULT_CHUNK) -> None:
        super().__init__()
        check_positive_int(type(self).__name__, key_dim=key_dim, chunk_size=chunk_size)
        self.key_dim, self.chunk_size = key_dim, chunk_size
        if not gate_temperature > 0:
            raise ValueError(f"gate_temperature must be > 0, got {gate_temperature!r}")
        self.gate_temperature = float(gate_temperature)
        self.gate = nn.Linear(key_dim, key_dim)

    def _log_gate(self, k: torch.Tensor, log_decay: torch.Tensor | None) -> torch.Tensor:
        log_g = F.logsigmoid(self.gate(k)) / self.gate_temperature
        if log_decay is not None:
            log_g = log_g + log_decay.to(log_g)[:, None]
        return log_g

    def _finish(self, o: torch.Tensor) -> torch.Tensor:
        return F.rms_norm(o, (o.shape[-1],))

    def _forward(
        self,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        causal: bool,
        mask: torch.Tensor | None,
        bias: Any,
    ) -> torch.Tensor:
        log_g = self._log_gate(k, head_decay(bias, "GatedLinearAttention"))
        q = q * self.key_dim**-0.5
        if mask is not None:  # a padded token writes nothing and decays nothing
            pad = mask[:, :, None, None]
            k, log_g = k.masked_fill(pad, 0.0), log_g.masked_fill(pad, 0.0)
        fla = fla_op("ops.gla", "chunk_gla") if q.is_cuda and causal else None
        if fla is not None:
            o, _ = fla(q, k, v, log_g, scale=1.0)
        elif causal:
            o, _ = chunk_gated_scan(q, k, v, log_g, self.chunk_size)
        else:
            o = bidirectional_gated_scan(q, k, v, log_g, self.chunk_size)
        return self._finish(o)

    def step(
        self, q_t: torch.Tensor, k_t: torch.Tensor, v_t: torch.Tensor, state: torch.Tensor, bias: Any = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One token: (B,H,Dk), (B,H,Dk), (B,H,Dv) -> (B,H,Dv), new state; equals the causal forward."""
        check_step(q_t, k_t, v_t, self.key_dim)
        log_decay = head_decay(bias, "GatedLinearAttention")
        log_g = F.logsigmoid(self.gate(k_t)) / self.gate_temperature
        if log_decay is not None:
            log_g = log_g + log_decay.to(log_g)[:, None]
        state = log_g.exp()[..., None] * state + k_t[..., :, None] * v_t[..., None, :]
        o = torch.einsum("bhd,bhde->bhe", q_t * self.key_dim**-0.5, state)
        return self._finish(o), state

    def extra_repr(self) -> str:
        return f"key_dim={self.key_dim}, gate_temperature={self.gate_temperature}, chunk_size={self.chunk_size}"
