"""Shared machinery of Stochastic Positional Encoding (SPE; Liutkus et al., ICML 2021).

A code generator draws R realizations of two correlated Gaussian processes Q̄_d, K̄_d per (head,
feature d), with cross-covariance E[Q̄_d[m] K̄_d[n]] = P_d(m - n). The filter maps queries and keys
(B, N, H, D) to q̂_m = Σ_d q_md Q̄_d[m] and k̂_n = Σ_d k_nd K̄_d[n], (B, N, H, R), so that on average
q̂_m·k̂_n / sqrt(R) = Σ_d q_md k_nd P̃_d(m - n) / sqrt(D). Codes carry the factor (R·D)^(-1/4) on each
side (docs/spe.md, "Normalisation"); the attention then uses the temperature of an R-dimensional key.

Gate (docs/spe.md, "Gate"): δ = sigmoid(g) per (head, feature); Q̄' = sqrt(1-δ) Q̄ + sqrt(δ) ε and the same for K̄,
ε ~ N(0, 1)/(D·R)^(1/4) of shape (H, D, R), shared by q and k. The effective kernel is
P̃ = (1-δ) P + δ. ε is part of the code (drawn with it): a call without a code draws both afresh
(the official behaviour in training), and a code reused across layers or decoding steps keeps one
ε, so one-token-at-a-time decoding reproduces the full pass (with a fresh ε per step, the cached
keys and the new query would carry independent ε and the position-free term would average out). The gated code is never built: sqrt(1-δ) is folded into the (small)
generator parameters, or applied to q and k by the shared-code contractions (shared_codes.py), and the ε
term is a separate (H, D, R) contraction.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from spelab.nn.positional._checks import check_offset, check_positive_int, check_qk
from spelab.nn.positional.shared_codes import SharedCodes, contract_shared


# R when a config or caller gives none (conf/pos_enc/{sinespe,convspe}.yaml set it for runs)
DEFAULT_NUM_REALIZATIONS = 64


class SPEGate(nn.Module):
    """Per-layer gate: one logit g per (head, feature), δ = sigmoid(g); init N(0, 1) as the official code."""

    def __init__(self, num_heads: int, head_dim: int) -> None:
        super().__init__()
        check_positive_int("SPEGate", num_heads=num_heads, head_dim=head_dim)
        self.gate = nn.Parameter(torch.randn(num_heads, head_dim))

    def delta(self) -> torch.Tensor:
        """(H, D) weight of the position-free part."""
        return torch.sigmoid(self.gate)


class StochasticPositionalEncoding(nn.Module):
    """Base class of SineSPE and ConvSPE: argument checks, gating, forward, kernel().

    Subclasses implement `draw`, `_code_length`, `_project` (q̂, k̂ through the code keep·C + mix: keep
    folded into their parameters or applied by the shared-code contractions, mix by `_add_mix` or by
    those contractions) and `_raw_kernel` (P without the gate).
    """

    is_relative = True

    def __init__(self, num_heads: int, head_dim: int, num_realizations: int, gated: bool) -> None:
        super().__init__()
        check_positive_int(
            type(self).__name__, num_heads=num_heads, head_dim=head_dim, num_realizations=num_realizations
        )
        if not isinstance(gated, bool):
            raise ValueError(f"{type(self).__name__}: gated must be True or False, got {gated!r}")
        self.num_heads, self.head_dim, self.num_realizations, self.gated = num_heads, head_dim, num_realizations, gated
        self.gate = SPEGate(num_heads, head_dim) if gated else None

    # ----------------------------------------------------------------------------- interface
    @property
    def key_dim(self) -> int:
        """The width attention sees per head: R (num_realizations)."""
        return self.num_realizations

    @property
    def code_scale(self) -> float:
        """(R·D)^(-1/4), applied to each side of the code."""
        return float(self.num_realizations * self.head_dim) ** -0.25

    def make_gate(self) -> SPEGate | None:
        """A fresh per-layer gate (None when not gated): layers share one code, each keeps its gate."""
        return SPEGate(self.num_heads, self.head_dim).to(self._reference().device) if self.gated else None

    def draw(self, length: int, device: torch.device | str | None = None) -> Any:
        """One code for positions 0 ... length-1 (with the gate noise ε when gated)."""
        check_positive_int(f"{type(self).__name__}.draw", length=length)
        device = device if device is not None else self._reference().device
        code = self._draw(length, torch.device(device))
        if self.gated:
            code.gate_noise = self.draw_gate_noise(device)
        return code

    def _draw(self, length: int, device: torch.device) -> Any:
        raise NotImplementedError

    def draw_gate_noise(self, device: torch.device | None = None, dtype: torch.dtype | None = None) -> torch.Tensor:
        """ε, (H, D, R) ~ N(0, 1) / (D·R)^(1/4)."""
        ref = self._reference()
        eps = torch.randn(
            self.num_heads, self.head_dim, self.num_realizations, device=device or ref.device, dtype=dtype or ref.dtype
        )
        return eps * self.code_scale

    def forward(
        self, q: torch.Tensor, k: torch.Tensor, code: Any = None, offset: int = 0, gate: SPEGate | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, N, H, D) queries and keys -> (B, N, H, R) q̂, k̂ at positions offset ... offset+N-1.

        code: from `draw` (default: a fresh draw of length offset+N); it may be longer than the input.
        gate: a per-layer gate from `make_gate()`, else the module's own gate (if gated).
        """
        name = type(self).__name__
        check_qk(name, q, k, self.num_heads, self.head_dim)
        offset = check_offset(name, offset)
        if code is None:
            code = self.draw(offset + q.shape[1], device=q.device)
        return self.filter(q, k, code, offset=offset, gate=self._resolve_gate(gate))

    def filter(
        self,
        q: torch.Tensor,
        k: torch.Tensor,
        code: Any,
        offset: int = 0,
        gate: SPEGate | None = None,
        gate_noise: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Deterministic part of forward: everything random comes in the code (gate_noise overrides ε)."""
        name = type(self).__name__
        self._check_code(code, offset, q.shape[1])
        keep = mix = None
        if gate is not None:
            gate_noise = gate_noise if gate_noise is not None else getattr(code, "gate_noise", None)
            if gate_noise is None or gate_noise.shape != (self.num_heads, self.head_dim, self.num_realizations):
                raise ValueError(
                    f"{name}: a gated filter needs a code drawn by a gated module (gate noise of shape "
                    f"{(self.num_heads, self.head_dim, self.num_realizations)}), got "
                    f"{None if gate_noise is None else tuple(gate_noise.shape)}"
                )
            delta = gate.delta()
            keep, mix = torch.sqrt(1.0 - delta), torch.sqrt(delta)[..., None] * gate_noise
        return self._project(q, k, code, offset, keep, mix)

    def kernel(self, lags: torch.Tensor, gate: SPEGate | None = None) -> torch.Tensor:
        """Effective kernel P̃(τ) = (1-δ) P(τ) + δ at lags τ = m - n: (H, D, len(lags))."""
        if not isinstance(lags, torch.Tensor) or lags.ndim != 1 or lags.is_floating_point() or lags.is_complex():
            desc = f"{lags.dtype} tensor of shape {tuple(lags.shape)}" if isinstance(lags, torch.Tensor) else repr(lags)
            raise ValueError(f"{type(self).__name__}.kernel: lags must be a 1-D integer tensor, got {desc}")
        raw = self._raw_kernel(lags.to(self._reference().device))
        gate = self._resolve_gate(gate)
        if gate is None:
            return raw
        delta = gate.delta()[..., None]
        return (1.0 - delta) * raw + delta

    # ----------------------------------------------------------------------------- helpers
    def _resolve_gate(self, gate: SPEGate | None) -> SPEGate | None:
        gate = self.gate if gate is None else gate
        if gate is not None and (not isinstance(gate, SPEGate) or gate.gate.shape != (self.num_heads, self.head_dim)):
            raise ValueError(
                f"{type(self).__name__}: gate must be an SPEGate for (heads={self.num_heads}, "
                f"head_dim={self.head_dim}) from make_gate(), got {gate!r}"
            )
        return gate

    def _reference(self) -> torch.Tensor:
        """A parameter, for the module's device and dtype."""
        return next(self.parameters())

    def _check_code(self, code: Any, offset: int, length: int) -> None:
        name = type(self).__name__
        code_length = self._code_length(code)
        if offset + length > code_length:
            raise ValueError(
                f"{name}: the code covers {code_length} positions but positions "
                f"{offset}..{offset + length - 1} were asked for; draw a longer code"
            )

    def _code_length(self, code: Any) -> int:
        raise NotImplementedError

    def _project(
        self,
        q: torch.Tensor,
        k: torch.Tensor,
        code: Any,
        offset: int,
        keep: torch.Tensor | None,
        mix: torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """q̂, k̂ through the code keep·C + mix (keep (H, D), mix (H, D, R): the gate; both None without)."""
        raise NotImplementedError

    @staticmethod
    def _add_mix(
        q: torch.Tensor, k: torch.Tensor, qhat: torch.Tensor, khat: torch.Tensor, mix: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """q̂ + q·mix, k̂ + k·mix: the gate's position-free term, a small (H, D, R) contraction instead of a
        gated (N, H, D, R) code (for paths that took keep into the code's parameters)."""
        if mix is None:
            return qhat, khat
        mix = mix.to(q.dtype)
        return qhat + torch.einsum("bnhd,hdr->bnhr", q, mix), khat + torch.einsum("bnhd,hdr->bnhr", k, mix)

    def _raw_kernel(self, lags: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    # ----------------------------------------------------------------------------- shared codes
    def _project_shared(
        self,
        q: torch.Tensor,
        k: torch.Tensor,
        code: Any,
        offset: int,
        keep: torch.Tensor | None,
        mix: torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """q̂, k̂ through ungated codes shared by every layer (shared_codes.py), each layer applying its own
        gate: the code keep·C + mix, with keep = sqrt(1-δ) per (head, feature)."""
        shared, token = self._shared_codes(code, offset, q.shape[1], q.device)
        return contract_shared(q, shared, token, 0, keep, mix), contract_shared(k, shared, token, 1, keep, mix)

    def _shared_codes(
        self, code: Any, offset: int, n: int, device: torch.device
    ) -> tuple[SharedCodes, torch.Tensor | None]:
        """(shared codes, token) built by `_build_shared` once and reused while the same code,
        positions, parameter values and grad mode are asked for (the layers of one forward).

        The entry is spent once its backward has run (its graph may be freed after that), so a code
        reused for another step rebuilds; a changed parameter (in-place optimizer step) changes its
        version counter and so the key. The entry lives on the code (`code.cache`).
        """
        noise = self._code_tensor(code)
        params = [p for name, p in self.named_parameters() if not name.startswith("gate.")]
        key = (
            id(self),
            offset,
            n,
            device,
            self._reference().dtype,
            torch.is_grad_enabled(),
            id(noise),
            noise._version,
            *((id(p), p._version) for p in params),
        )
        if code.cache is not None and code.cache[0] == key and not code.cache[1][0].spent:
            return code.cache[1]
        with torch.autocast(device.type, enabled=False):
            entry = self._build_shared(code, offset, n)
        code.cache = (key, entry)
        return entry

    def _code_tensor(self, code: Any) -> torch.Tensor:
        """The code's random tensor (its identity and version key the shared-codes cache)."""
        raise NotImplementedError

    def _build_shared(self, code: Any, offset: int, n: int) -> tuple[SharedCodes, torch.Tensor | None]:
        raise NotImplementedError

    def extra_repr(self) -> str:
        return (
            f"num_heads={self.num_heads}, head_dim={self.head_dim}, "
            f"num_realizations={self.num_realizations}, gated={self.gated}"
        )
