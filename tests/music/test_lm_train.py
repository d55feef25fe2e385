"""The causal LM task: the loss is the token NLL (checked independently), and grid cells train on
task=music debug=smoke through spelab.train (one cell fast, the full product slow)."""

from __future__ import annotations

import json
import math

import pytest
import torch

from cfg_utils import ATTENTIONS, POS_ENCS
from music_helpers import smoke_overrides, train_run
from spelab.nn import Transformer
from spelab.tasks.language_model import LanguageModelTask


def tiny_model(vocab: int = 11, causal: bool = True) -> Transformer:
    return Transformer(vocab, d_model=8, num_layers=1, num_heads=2, ff_dim=16, dropout=0.0, max_len=16, causal=causal)


def tiny_task(vocab: int = 11) -> LanguageModelTask:
    return LanguageModelTask(tiny_model(vocab), vocab_size=vocab).double().eval()


@torch.no_grad()
def test_nll_matches_an_independent_float64_computation():
    torch.manual_seed(0)
    task = tiny_task()
    ids = torch.randint(1, 11, (3, 9))
    pad = torch.zeros(3, 9, dtype=torch.bool)
    pad[1, 6:] = True
    pad[2, 3:] = True
    ids[pad] = 0
    nll, valid = task.token_nll({"input_ids": ids, "padding_mask": pad})
    # reference: per sequence, unpadded prefix only, log-softmax by hand
    total, count = 0.0, 0
    for b in range(3):
        n = int((~pad[b]).sum())
        hidden = task.model(ids[b : b + 1, : n - 1])
        logits = task.head(hidden)[0]
        logp = logits - logits.exp().sum(-1, keepdim=True).log()
        for t in range(n - 1):
            total -= float(logp[t, ids[b, t + 1]])
            count += 1
    assert int(valid.sum()) == count == 8 + 5 + 2
    assert float(nll.sum()) == pytest.approx(total, rel=1e-9)
    assert float(nll[~valid].abs().sum()) == 0.0  # padded targets contribute nothing


def test_rejects_classification_settings_and_a_non_causal_backbone():
    with pytest.raises(ValueError, match="num_classes"):
        LanguageModelTask(tiny_model(5), vocab_size=5, num_classes=3)
    with pytest.raises(ValueError, match=r"model\.causal=true"):  # the config states causal; the task checks it
        LanguageModelTask(tiny_model(5, causal=False), vocab_size=5)


def _check_run(run_dir):
    results = json.loads((run_dir / "results.json").read_text())
    assert results["status"] == "done"
    m = results["metrics"]
    assert math.isfinite(m["test/nll"]) and m["test/ppl"] == pytest.approx(math.exp(m["test/nll"]), rel=1e-4)
    assert "val/loss" in m and "train/loss" in m
    # it trained: the optimizer took every step, on gradients that were not all zero
    ckpt = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    states = list(ckpt["optimizer_states"][0]["state"].values())
    assert states and all(int(st["step"]) == m["global_step"] > 0 for st in states)
    assert any(st["exp_avg"].abs().sum() > 0 for st in states)


def test_smoke_cell_trains(tmp_path, music_cache):
    run = tmp_path / "run"
    train_run(run, smoke_overrides(music_cache, "performer", "sinespe"))
    _check_run(run)


@pytest.mark.slow
@pytest.mark.parametrize("attention", ATTENTIONS)
@pytest.mark.parametrize("pos_enc", POS_ENCS)
def test_every_cell_trains(attention, pos_enc, tmp_path, music_cache):
    run = tmp_path / "run"
    train_run(run, smoke_overrides(music_cache, attention, pos_enc))
    _check_run(run)
