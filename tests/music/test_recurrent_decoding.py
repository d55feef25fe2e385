"""Recurrent decoding (Transformer.step, one token at a time, one code for the whole length) gives the
same next-token distributions as the parallel causal forward pass, for every attention x pos_enc."""

from __future__ import annotations

import pytest
import torch
from hydra.utils import instantiate

from spelab.generate import filter_logits, sample
from spelab.tasks.language_model import LanguageModelTask

ATTENTION = {
    "softmax": {"_target_": "spelab.nn.SoftmaxAttention", "_partial_": True},
    "performer": {"_target_": "spelab.nn.PerformerAttention", "_partial_": True, "num_features": 32},
    "linear": {"_target_": "spelab.nn.LinearAttention", "_partial_": True},
}
POS_ENC = {
    "none": None,
    "sinusoidal": {"_target_": "spelab.nn.SinusoidalPositionalEncoding", "_partial_": True},
    "learned": {"_target_": "spelab.nn.LearnedPositionalEncoding", "_partial_": True},
    "sinespe": {"_target_": "spelab.nn.SineSPE", "_partial_": True, "num_realizations": 8, "num_sines": 3},
    "convspe": {"_target_": "spelab.nn.ConvSPE", "_partial_": True, "num_realizations": 8, "kernel_size": 5},
    "rope": {"_target_": "spelab.nn.RotaryEmbedding", "_partial_": True},
}


def make_task(attention: str, pos_enc: str, vocab: int = 13) -> LanguageModelTask:
    model = {
        "_target_": "spelab.nn.Transformer",
        "d_model": 16,
        "num_layers": 2,
        "num_heads": 2,
        "ff_dim": 32,
        "dropout": 0.0,
        "max_len": 32,
        "attention": ATTENTION[attention],
        "pos_enc": POS_ENC[pos_enc],
    }
    torch.manual_seed(0)
    return LanguageModelTask(instantiate(model, vocab_size=vocab, causal=True), vocab_size=vocab).double().eval()


def step_logits(task, ids: torch.Tensor, code=None) -> torch.Tensor:
    """(B, N) ids -> (B, N, V) next-token logits computed one token at a time."""
    model = task.model
    state = model.init_state(ids.shape[0], device=ids.device)
    outs = []
    for t in range(ids.shape[1]):
        hidden, state = model.step(ids[:, t], state, code=code)
        outs.append(task.head(hidden))
    return torch.stack(outs, dim=1)


@pytest.mark.parametrize("attention", sorted(ATTENTION))
@pytest.mark.parametrize("pos_enc", sorted(POS_ENC))
@torch.no_grad()
def test_step_matches_parallel(attention, pos_enc):
    task = make_task(attention, pos_enc)
    ids = torch.randint(1, 13, (2, 12))
    code = task.model.draw_code(ids.shape[1])  # the same draw for both forms
    parallel = task.logits(ids, code=code).log_softmax(-1)
    recurrent = step_logits(task, ids, code=code).log_softmax(-1)
    torch.testing.assert_close(recurrent, parallel, rtol=1e-7, atol=1e-9)


@torch.no_grad()
def test_a_different_code_changes_spe_outputs():
    """Guards the test above: the code really enters the computation."""
    task = make_task("performer", "sinespe")
    ids = torch.randint(1, 13, (1, 10))
    a = task.logits(ids, code=task.model.draw_code(10))
    b = task.logits(ids, code=task.model.draw_code(10))
    assert not torch.allclose(a, b)


def test_nucleus_filter_keeps_the_smallest_set_reaching_top_p():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]], dtype=torch.float64))
    kept = filter_logits(logits, 1.0, 0.79).exp()
    torch.testing.assert_close(kept, torch.tensor([[0.625, 0.375, 0.0, 0.0]], dtype=torch.float64))
    kept = filter_logits(logits, 1.0, 0.81).exp()
    assert (kept > 0).sum() == 3
    banned = filter_logits(logits, 1.0, 1.0, banned=(0,)).exp()
    assert banned[0, 0] == 0 and banned.sum() == pytest.approx(1.0)


@torch.no_grad()
def test_sample_keeps_the_prompt_and_never_emits_padding():
    task = make_task("linear", "sinespe")
    prompt = torch.tensor([[3, 4, 5]] * 4)
    out = sample(task, prompt, 20, temperature=1.5, top_p=0.95, banned=(0,), generator=torch.Generator().manual_seed(0))
    assert out.shape == (4, 23) and torch.equal(out[:, :3], prompt)
    assert int(out.min()) >= 1 and int(out.max()) < 13
