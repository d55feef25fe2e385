"""A pre-norm Transformer whose attention backend and positional scheme are constructor arguments.

The same module serves the LRA encoders (bidirectional) and the music decoders (causal, with
recurrent decoding through `step`). Relative schemes (SPE, rope) act on queries and keys inside every
layer; by default one code is drawn per forward pass and shared by all layers, each layer keeping its
own gate (the paper's music setting).
"""

from __future__ import annotations

from typing import Any, Callable

import torch
from torch import nn

from spelab.nn._checks import check_positive_int
from spelab.nn.positional import NoPositionalEncoding, build_positional

Factory = Callable[..., nn.Module]


def _bias(relative: nn.Module | None, gate: nn.Module | None) -> dict[str, Any]:
    """`bias=` for the attention when the scheme is a logit bias or a decay (ALiBi, KERPLE, FIRE, decay)."""
    if relative is None or not hasattr(relative, "attention_bias"):
        return {}
    return {"bias": relative.attention_bias(gate)}


class TransformerBlock(nn.Module):
    """Pre-norm block: x + Attn(LN(x)), then x + FF(LN(x))."""

    def __init__(
        self,
        d_model: int,
        num_heads: int,
        ff_dim: int,
        dropout: float,
        attention: Factory,
        key_dim: int,
        relative: nn.Module | None,
        gate: nn.Module | None,
        qkv_dim: int | None = None,
    ) -> None:
        super().__init__()
        qkv_dim = d_model if qkv_dim is None else qkv_dim  # the attention's width (LRA's qkv_dim)
        self.num_heads = num_heads
        self.head_dim = qkv_dim // num_heads
        self.norm1 = nn.LayerNorm(d_model)
        self.qkv = nn.Linear(d_model, 3 * qkv_dim)
        self.attn = attention(key_dim=key_dim)
        self.out = nn.Linear(qkv_dim, d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.ff = nn.Sequential(nn.Linear(d_model, ff_dim), nn.GELU(), nn.Dropout(dropout), nn.Linear(ff_dim, d_model))
        self.dropout = nn.Dropout(dropout)
        # `relative` is set only when this layer owns its scheme (share_code=False); a shared scheme
        # is passed to forward() by the Transformer so that it is registered once.
        self.relative = relative
        self.gate = gate

    def _project(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        q, k, v = self.qkv(self.norm1(x)).unflatten(-1, (3, self.num_heads, self.head_dim)).unbind(-3)
        return q, k, v

    def forward(
        self,
        x: torch.Tensor,
        padding_mask: torch.Tensor | None,
        causal: bool,
        relative: nn.Module | None,
        code: Any,
        offset: int = 0,
    ) -> torch.Tensor:
        q, k, v = self._project(x)
        relative = self.relative if self.relative is not None else relative
        if relative is not None:
            q, k = relative(q, k, code=code, offset=offset, gate=self.gate)
        y = self.attn(q, k, v, causal=causal, key_padding_mask=padding_mask, **_bias(relative, self.gate))
        x = x + self.dropout(self.out(y.flatten(-2)))
        return x + self.dropout(self.ff(self.norm2(x)))

    def step(
        self, x: torch.Tensor, state: Any, relative: nn.Module | None, code: Any, position: int
    ) -> tuple[torch.Tensor, Any]:
        """One token (B, d_model) at `position`, given the attention state of the earlier tokens."""
        q, k, v = self._project(x[:, None])
        relative = self.relative if self.relative is not None else relative
        if relative is not None:
            q, k = relative(q, k, code=code, offset=position, gate=self.gate)
        y, state = self.attn.step(q[:, 0], k[:, 0], v[:, 0], state, **_bias(relative, self.gate))
        x = x + self.dropout(self.out(y.flatten(-2)))
        return x + self.dropout(self.ff(self.norm2(x))), state


class Transformer(nn.Module):
    """Token embedding + positional scheme + `num_layers` blocks + final LayerNorm.

    Args:
        vocab_size: number of token ids (0 is the padding id by the data contract).
        attention: factory called as ``attention(key_dim=...)`` for each layer (a Hydra
            ``_partial_`` of SoftmaxAttention, PerformerAttention or LinearAttention).
        pos_enc: factory or class of a positional scheme (absolute or relative); None means none.
        causal: decoder (each position sees itself and the past) instead of encoder.
        share_code: relative schemes: one module and one code per forward, shared by all layers
            (per-layer gates); False gives every layer its own scheme and its own draws.
        prepend_cls: prepend a learned [CLS] vector (for ``pooling="cls"`` heads).
        qkv_dim: width of queries/keys/values over all heads (None: d_model), as LRA's ``qkv_dim``;
            each head gets qkv_dim // num_heads.
        code_per_layer: with ``share_code``, the shared scheme (parameters) still draws a fresh code
            for every layer, as the official LRA SPE runs do (``shared=True`` there shares parameters).
    """

    def __init__(
        self,
        vocab_size: int,
        d_model: int = 128,
        num_layers: int = 2,
        num_heads: int = 4,
        ff_dim: int | None = None,
        dropout: float = 0.1,
        attention: Factory | None = None,
        pos_enc: Factory | None = None,
        max_len: int = 2048,
        causal: bool = False,
        share_code: bool = True,
        prepend_cls: bool = False,
        qkv_dim: int | None = None,
        code_per_layer: bool = False,
    ) -> None:
        super().__init__()
        ff_dim = 4 * d_model if ff_dim is None else ff_dim
        width = "d_model" if qkv_dim is None else "qkv_dim"  # the key named in errors
        qkv_dim = d_model if qkv_dim is None else qkv_dim
        check_positive_int(
            "Transformer",
            vocab_size=vocab_size,
            d_model=d_model,
            num_layers=num_layers,
            num_heads=num_heads,
            ff_dim=ff_dim,
            max_len=max_len,
            qkv_dim=qkv_dim,
        )
        if qkv_dim % num_heads:
            raise ValueError(
                f"Transformer: num_heads={num_heads} must divide {width}={qkv_dim} "
                f"(e.g. num_heads in {[h for h in range(1, 17) if qkv_dim % h == 0]})"
            )
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"Transformer: dropout must be in [0, 1), got {dropout}")
        if attention is None:
            from spelab.nn.attention import SoftmaxAttention

            attention = SoftmaxAttention
        self.d_model, self.num_heads, self.causal = d_model, num_heads, causal
        self.max_len, self.share_code = max_len, share_code
        self.qkv_dim, self.code_per_layer = qkv_dim, bool(code_per_layer)
        head_dim = qkv_dim // num_heads
        # a [CLS] vector takes one position, so absolute tables need one more slot
        total_len = max_len + int(prepend_cls)

        def make_pos() -> nn.Module:
            return build_positional(
                pos_enc or NoPositionalEncoding,
                d_model=d_model,
                num_heads=num_heads,
                head_dim=head_dim,
                max_len=total_len,
            )

        self.embed = nn.Embedding(vocab_size, d_model)
        self.cls = nn.Parameter(torch.randn(d_model) * 0.02) if prepend_cls else None
        pos = make_pos()
        self.absolute = None if pos.is_relative else pos
        self.relative = pos if pos.is_relative and share_code else None
        key_dim = pos.key_dim if pos.is_relative else head_dim
        blocks = []
        for _ in range(num_layers):
            own = (pos if not blocks else make_pos()) if pos.is_relative and not share_code else None
            # the shared scheme's own gate serves layer 0 (gate=None); every other layer gets its own
            gate = pos.make_gate() if self.relative is not None and blocks else None
            blocks.append(
                TransformerBlock(d_model, num_heads, ff_dim, dropout, attention, key_dim, own, gate, qkv_dim=qkv_dim)
            )
        self.blocks = nn.ModuleList(blocks)
        self.norm = nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)

    # -- codes ------------------------------------------------------------------------------
    def draw_code(self, length: int, device: torch.device | None = None) -> Any:
        """One positional code for `length` positions: shared by all layers, or one per layer."""
        if self.relative is not None:
            if self.code_per_layer:
                return [self.relative.draw(length, device=device) for _ in self.blocks]
            return self.relative.draw(length, device=device)
        if self.absolute is None:  # relative scheme, one per layer
            return [blk.relative.draw(length, device=device) for blk in self.blocks]
        return None

    def _layer_codes(self, code: Any) -> list[Any]:
        if isinstance(code, list):
            if len(code) != len(self.blocks):
                raise ValueError(f"Transformer: got {len(code)} per-layer codes for {len(self.blocks)} layers")
            return code
        return [code] * len(self.blocks)

    # -- parallel form ------------------------------------------------------------------------
    def embed_tokens(self, input_ids: torch.Tensor, offset: int = 0) -> torch.Tensor:
        x = self.embed(input_ids)
        if self.absolute is not None:
            x = self.absolute(x, offset=offset)
        return x

    def forward(
        self, input_ids: torch.Tensor, padding_mask: torch.Tensor | None = None, code: Any = None
    ) -> torch.Tensor:
        """(B, N) token ids -> (B, N, d_model) hidden states ((B, N+1, ...) with a [CLS] vector)."""
        if input_ids.dim() != 2:
            raise ValueError(f"Transformer: input_ids must be (batch, length), got shape {tuple(input_ids.shape)}")
        if padding_mask is not None and padding_mask.shape != input_ids.shape:
            raise ValueError(
                f"Transformer: padding_mask shape {tuple(padding_mask.shape)} "
                f"!= input_ids shape {tuple(input_ids.shape)}"
            )
        x = self.embed(input_ids)
        if self.cls is not None:
            x = torch.cat([self.cls.expand(x.shape[0], 1, -1), x], dim=1)
            if padding_mask is not None:
                padding_mask = torch.cat([padding_mask.new_zeros(x.shape[0], 1), padding_mask], dim=1)
        if self.absolute is not None:
            x = self.absolute(x)
        x = self.dropout(x)
        if code is None and self.relative is not None:
            code = self.draw_code(x.shape[1], device=x.device)
        for block, layer_code in zip(self.blocks, self._layer_codes(code)):
            x = block(x, padding_mask, self.causal, self.relative, layer_code)
        return self.norm(x)

    # -- recurrent form (causal decoding, O(1) per token for linear backends) ------------------
    def init_state(
        self, batch_size: int, device: torch.device | None = None, dtype: torch.dtype | None = None
    ) -> dict[str, Any]:
        if not self.causal:
            raise RuntimeError("Transformer.init_state: recurrent decoding needs a causal model (causal=True)")
        dtype = dtype or self.embed.weight.dtype
        head_dim = self.qkv_dim // self.num_heads
        layers = [
            blk.attn.init_state(batch_size, self.num_heads, head_dim, device=device, dtype=dtype) for blk in self.blocks
        ]
        return {"position": 0, "layers": layers}

    def step(self, token: torch.Tensor, state: dict[str, Any], code: Any = None) -> tuple[torch.Tensor, dict]:
        """Feed one token per sequence, (B,) ids -> (B, d_model) hidden state of that position.

        Relative schemes need the `code` of the whole target length (``draw_code``), so that every
        step uses the same draw, as the parallel form does.
        """
        position = state["position"]
        if code is None and self._needs_code():
            raise ValueError(
                "Transformer.step: pass code=model.draw_code(total_length) so that all "
                "decoding steps share one positional code"
            )
        x = self.dropout(self.embed_tokens(token[:, None], offset=position))[:, 0]
        new_layers = []
        for block, layer_state, layer_code in zip(self.blocks, state["layers"], self._layer_codes(code)):
            x, layer_state = block.step(x, layer_state, self.relative, layer_code, position)
            new_layers.append(layer_state)
        return self.norm(x), {"position": position + 1, "layers": new_layers}

    def _needs_code(self) -> bool:
        """True when the relative scheme draws random codes (SPE), False for none/absolute/rope."""
        schemes = [self.relative] if self.relative is not None else [b.relative for b in self.blocks]
        return any(s is not None and s.draw(1) is not None for s in schemes)
