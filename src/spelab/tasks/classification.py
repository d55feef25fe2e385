"""Sequence classification (single sequence, or two sequences through a shared encoder for retrieval)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics import MaxMetric, MeanMetric
from torchmetrics.classification import MulticlassAccuracy

from spelab.nn.heads import POOLINGS, ClassificationHead, DualClassificationHead
from spelab.tasks.base import SequenceTask


class ClassificationTask(SequenceTask):
    """Backbone -> pooled head -> cross-entropy. Logs {train,val,test}/{loss,acc} and val/acc_best.

    Args:
        model: backbone, (B, N) ids -> (B, N, d_model).
        num_classes: head size; d_model: the backbone width (None: model.d_model); dual: batches hold
            two sequences (B, 2, N) (retrieval). num_classes, dual, vocab_size and pad_id are the
            datamodule's facts, passed by spelab.train.build_module (vocab_size, pad_id: unused here).
        pooling: "mean" over real tokens, or "cls" (the backbone must prepend a [CLS] vector:
            model.prepend_cls=true).
        head_dropout: dropout inside the head MLP; head_mlp_dim: its hidden width (None: d_model; LRA's
            classifiers use the model's mlp_dim); head_interaction, head_layers: the two-tower head's
            (dual only). Other keyword arguments: SequenceTask (optimizer, scheduler and their values).
    """

    def __init__(
        self,
        model: nn.Module,
        num_classes: int,
        d_model: int | None = None,
        dual: bool = False,
        pooling: str = "mean",
        head_dropout: float = 0.0,
        head_mlp_dim: int | None = None,
        head_interaction: str = "nli",
        head_layers: int = 1,
        vocab_size: int | None = None,
        pad_id: int | None = None,
        **optim,
    ) -> None:
        if pooling not in POOLINGS:
            raise ValueError(f"task.module.pooling={pooling!r} is not one of {list(POOLINGS)}")
        if pooling == "cls" and getattr(model, "cls", False) is None:  # a spelab Transformer without one
            raise ValueError(
                "task.module.pooling=cls reads a [CLS] vector the backbone does not prepend: "
                "set model.prepend_cls=true (or task.module.pooling=mean)"
            )
        super().__init__(model, **optim)
        self.save_hyperparameters(ignore=["model", "optimizer", "scheduler"], logger=False)
        d_model = d_model or model.d_model
        self.dual = dual
        if dual:  # interaction and depth: see DualClassificationHead
            self.head = DualClassificationHead(
                d_model,
                num_classes,
                pooling=pooling,
                dropout=head_dropout,
                mlp_dim=head_mlp_dim,
                interaction=head_interaction,
                layers=head_layers,
            )
        else:
            self.head = ClassificationHead(
                d_model, num_classes, pooling=pooling, dropout=head_dropout, mlp_dim=head_mlp_dim
            )
        # ModuleDict keys may not be "train" (an nn.Module attribute), hence the "<split>_" prefix.
        self.acc = nn.ModuleDict(
            {f"{s}_": MulticlassAccuracy(num_classes, average="micro") for s in ("train", "val", "test")}
        )
        self.loss_mean = nn.ModuleDict({f"{s}_": MeanMetric() for s in ("val", "test")})
        self.val_acc_best = MaxMetric()
        self.val_acc_best.persistent(True)  # survives a resume from last.ckpt

    def forward(self, input_ids: torch.Tensor, padding_mask: torch.Tensor | None = None) -> torch.Tensor:
        if not self.dual:
            return self.head(self.model(input_ids, padding_mask), padding_mask)
        b, _, n = input_ids.shape
        mask = padding_mask.reshape(2 * b, n) if padding_mask is not None else None
        hidden = self.model(input_ids.reshape(2 * b, n), mask)
        hidden = hidden.view(b, 2, *hidden.shape[1:])
        m = mask.view(b, 2, n) if mask is not None else None
        return self.head(hidden[:, 0], None if m is None else m[:, 0], hidden[:, 1], None if m is None else m[:, 1])

    def _step(self, batch: dict, split: str) -> torch.Tensor:
        logits = self(batch["input_ids"], batch.get("padding_mask")).float()
        loss = F.cross_entropy(logits, batch["labels"])
        self.acc[split + "_"](logits.argmax(-1), batch["labels"])
        bs = batch["labels"].shape[0]
        if split == "train":
            self.log("train/loss", loss, on_step=True, on_epoch=False, prog_bar=True, batch_size=bs)
            self.log("train/acc", self.acc[split + "_"], on_step=False, on_epoch=True, batch_size=bs)
        else:
            self.loss_mean[split + "_"](loss, weight=bs)
            self.log(f"{split}/loss", self.loss_mean[split + "_"], on_step=False, on_epoch=True, batch_size=bs)
            self.log(f"{split}/acc", self.acc[split + "_"], on_step=False, on_epoch=True, prog_bar=True, batch_size=bs)
        return loss

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        return self._step(batch, "train")

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        self._step(batch, "val")

    def test_step(self, batch: dict, batch_idx: int) -> None:
        self._step(batch, "test")

    def on_validation_epoch_end(self) -> None:
        if self.trainer.sanity_checking:
            return
        self.val_acc_best(self.acc["val_"].compute())
        self.log("val/acc_best", self.val_acc_best.compute(), prog_bar=True)
