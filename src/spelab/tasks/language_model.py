"""LanguageModelTask: a causal Transformer decoder with an LM head, trained by next-token cross-entropy.

Batches follow the data contract (`input_ids`, `padding_mask`): the model reads tokens 0..N-2 and
predicts tokens 1..N-1; padded targets are ignored. Logged: train/loss, val/loss (= val/nll), val/ppl,
test/nll, test/ppl (perplexity = exp of the token-averaged NLL, via torchmetrics).
"""

from __future__ import annotations

from typing import Any, Mapping

import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics import MeanMetric

from spelab.nn.heads import LMHead
from spelab.tasks.base import SequenceTask


class LanguageModelTask(SequenceTask):
    """Causal LM over token ids.

    Args:
        model: the causal backbone (spelab.nn.Transformer(causal=True); the config states
            model.causal=true, this class only checks it).
        vocab_size: size of the LM head (the DataModule's vocab_size); pad_id: ignored targets.
        d_model: the backbone width (defaults to model.d_model). tie_embeddings: share the head and
            the token embedding. num_classes/dual: the datamodule's facts, passed to every task by
            spelab.train.build_module; must be 0/False. Other keyword arguments: SequenceTask
            (optimizer, scheduler and their values).
    """

    def __init__(
        self,
        model: nn.Module,
        vocab_size: int,
        d_model: int | None = None,
        pad_id: int = 0,
        tie_embeddings: bool = False,
        num_classes: int = 0,
        dual: bool = False,
        **optim: Any,
    ) -> None:
        if not isinstance(vocab_size, int) or vocab_size < 2:
            raise ValueError(f"LanguageModelTask: vocab_size must be an integer >= 2, got {vocab_size!r}")
        if num_classes or dual:
            raise ValueError(
                f"LanguageModelTask: a language model has num_classes=0 and dual=False, got "
                f"num_classes={num_classes}, dual={dual} (a classification datamodule under a language-model task?)"
            )
        if not isinstance(model, nn.Module):
            raise TypeError(
                f"LanguageModelTask: model must be a built backbone (nn.Module), got {type(model).__name__}"
            )
        if not getattr(model, "causal", False):
            raise ValueError("LanguageModelTask: the Transformer must be causal (model.causal=true)")
        super().__init__(model, **optim)
        self.save_hyperparameters(ignore=["model", "optimizer", "scheduler"], logger=False)
        d_model = d_model or self.model.d_model
        self.head = LMHead(d_model, vocab_size, tie_to=self.model.embed if tie_embeddings else None)
        self.pad_id = pad_id
        self.metrics = nn.ModuleDict({f"{s}_nll": MeanMetric() for s in ("train", "val", "test")})

    # -- forward ------------------------------------------------------------------------------
    def logits(
        self, input_ids: torch.Tensor, padding_mask: torch.Tensor | None = None, code: Any = None
    ) -> torch.Tensor:
        """(B, N) ids -> (B, N, V) next-token logits (position t predicts token t+1)."""
        return self.head(self.model(input_ids, padding_mask=padding_mask, code=code))

    def token_nll(self, batch: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-target NLL (B, N-1) and the mask of real (non-padding) targets (B, N-1)."""
        ids = batch["input_ids"]
        mask = batch.get("padding_mask")
        if mask is None:
            mask = ids.eq(self.pad_id)
        inputs, targets = ids[:, :-1], ids[:, 1:]
        logits = self.logits(inputs, padding_mask=mask[:, :-1] if mask[:, :-1].any() else None)
        # fp32 at least (bf16 logits lose the loss), fp64 kept
        logits = logits if logits.dtype == torch.float64 else logits.float()
        nll = F.cross_entropy(logits.transpose(1, 2), targets, reduction="none")
        valid = ~mask[:, 1:]
        return nll * valid, valid

    def _step(self, batch: Mapping[str, torch.Tensor], split: str) -> torch.Tensor:
        nll, valid = self.token_nll(batch)
        count = valid.sum()
        loss = nll.sum() / count.clamp_min(1)
        if not torch.isfinite(loss):
            from spelab.errors import NonFiniteLossError

            raise NonFiniteLossError(int(self.global_step), float(loss))
        metric = self.metrics[f"{split}_nll"]
        metric.update(loss.detach(), weight=count)
        if split == "train":
            self.log("train/loss", loss, prog_bar=True, on_step=True, on_epoch=False)
        return loss

    def training_step(self, batch, batch_idx):
        return self._step(batch, "train")

    def validation_step(self, batch, batch_idx):
        self._step(batch, "val")

    def test_step(self, batch, batch_idx):
        self._step(batch, "test")

    def _log_epoch(self, split: str) -> None:
        metric = self.metrics[f"{split}_nll"]
        if metric.update_count == 0:
            return
        nll = metric.compute()
        metric.reset()
        names = {"loss": nll, "nll": nll, "ppl": torch.exp(nll)}
        if split == "train":
            names = {"nll_epoch": nll}
        for name, value in names.items():
            self.log(f"{split}/{name}", value, prog_bar=split == "val" and name == "loss")

    def on_train_epoch_end(self) -> None:
        self._log_epoch("train")

    def on_validation_epoch_end(self) -> None:
        self._log_epoch("val")

    def on_test_epoch_end(self) -> None:
        self._log_epoch("test")
