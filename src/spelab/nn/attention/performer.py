"""PerformerAttention: FAVOR+ positive orthogonal random features (Choromanski et al., ICLR 2021)."""

from __future__ import annotations

import torch

from ._checks import check_positive_int
from ._kernel_base import KernelAttention
from .causal_linear import DEFAULT_CHUNK
from .feature_maps import favor_plus_features, orthogonal_gaussian_matrix

REDRAW_CHOICES = ("step", "never", "a positive int n (every n training steps)")


def _check_redraw(redraw: object) -> str | int:
    if redraw in ("step", "never"):
        return redraw  # type: ignore[return-value]
    if isinstance(redraw, int) and not isinstance(redraw, bool) and redraw > 0:
        return redraw
    raise ValueError(f"redraw must be one of {REDRAW_CHOICES}, got {redraw!r}")


class PerformerAttention(KernelAttention):
    """Softmax attention approximated with FAVOR+ features: phi(q).phi(k) ~ exp(q.k / sqrt(key_dim)).

    Args:
        key_dim: dimension of the queries/keys this backend receives (R after SPE); it sets the
            temperature (x * key_dim**-0.25 on each side) and the projection's width.
        num_features: number of random features M (orthogonal blocks of key_dim rows).
        redraw: "step" (a fresh projection for every training forward call), an int n (every n
            training calls) or "never". The projection never changes in `step`, nor in eval()
            unless `redraw_eval`.
        redraw_eval: a fresh projection for every forward call in eval() too (the official LRA
            Performer's behaviour: its features are redrawn on every call, evaluation included).
        eps: added to each feature (FAVOR+'s numerical stabiliser) and to the normaliser.
        chunk_size: chunk length of the causal chunked algorithm.

    A "training step" is a forward call while `self.training`; a layer applied twice in one
    optimisation step (e.g. both documents of a dual encoder) counts twice.
    """

    name = "performer"  # its option in conf/attention/ (pos_enc schemes list the options that take them)

    def __init__(
        self,
        key_dim: int,
        num_features: int = 256,
        redraw: str | int = "step",
        eps: float = 1e-6,
        chunk_size: int = DEFAULT_CHUNK,
        redraw_eval: bool = False,
    ) -> None:
        super().__init__(key_dim, eps=eps, chunk_size=chunk_size)
        check_positive_int(type(self).__name__, num_features=num_features)
        self.num_features = num_features
        self.redraw = _check_redraw(redraw)
        self.redraw_eval = bool(redraw_eval)
        self.register_buffer("projection", orthogonal_gaussian_matrix(num_features, key_dim))
        self._train_calls = 0  # training forward calls seen (drives the redraw policy)

    @torch.no_grad()
    def redraw_features(self) -> None:
        """Draw a fresh orthogonal projection on the buffer's device (no host round trip).

        The buffer is replaced, not overwritten in place: a graph built by an earlier call that has
        not been backpropagated yet (gradient accumulation, a layer applied twice) keeps its features.
        """
        p = self.projection
        self.projection = orthogonal_gaussian_matrix(self.num_features, self.key_dim, device=p.device, dtype=p.dtype)

    # The redraw counter travels in state_dict (as extra state, no device tensor and no host sync),
    # so a run resumed from a checkpoint redraws on the same steps as an uninterrupted one.
    def get_extra_state(self) -> dict:
        return {"train_calls": self._train_calls}

    def set_extra_state(self, state: dict) -> None:
        self._train_calls = int(state.get("train_calls", 0)) if isinstance(state, dict) else 0

    def _prepare(self) -> None:
        if not self.training:
            if self.redraw_eval:
                self.redraw_features()
            return
        if self.redraw == "never":
            return
        every = 1 if self.redraw == "step" else int(self.redraw)
        if self._train_calls > 0 and self._train_calls % every == 0:
            self.redraw_features()
        self._train_calls += 1

    def features(
        self,
        x: torch.Tensor,
        is_query: bool,
        causal: bool,
        key_padding_mask: torch.Tensor | None,
        seq_dim: int = 1,
    ) -> torch.Tensor:
        return favor_plus_features(
            x,
            self.projection,
            is_query=is_query,
            stabilize_keys=not causal,
            key_padding_mask=key_padding_mask,
            eps=self.eps,
            seq_dim=seq_dim,
        )

    def extra_repr(self) -> str:
        return f"key_dim={self.key_dim}, num_features={self.num_features}, redraw={self.redraw!r}, eps={self.eps}"
