"""The Transformer composed with every backend and scheme: causality, padding, recurrent = parallel."""

from __future__ import annotations

import functools

import pytest
import torch

from spelab.nn import (
    ClassificationHead,
    ConvSPE,
    DualClassificationHead,
    LearnedPositionalEncoding,
    LinearAttention,
    LMHead,
    NoPositionalEncoding,
    PerformerAttention,
    RotaryEmbedding,
    SineSPE,
    SinusoidalPositionalEncoding,
    SoftmaxAttention,
    Transformer,
)

ATTENTIONS = {
    "softmax": SoftmaxAttention,
    "performer": functools.partial(PerformerAttention, num_features=64),
    "linear": LinearAttention,
}
POS_ENCS = {
    "none": NoPositionalEncoding,
    "sinusoidal": SinusoidalPositionalEncoding,
    "learned": LearnedPositionalEncoding,
    "sinespe": functools.partial(SineSPE, num_realizations=16, num_sines=3, gated=True),
    "convspe": functools.partial(ConvSPE, num_realizations=16, kernel_size=5, gated=True),
    "rope": RotaryEmbedding,
}
CELLS = [(a, p) for a in ATTENTIONS for p in POS_ENCS]


def make(attention: str, pos_enc: str, causal: bool, **kw) -> Transformer:
    torch.manual_seed(0)
    model = Transformer(
        vocab_size=11,
        d_model=16,
        num_layers=2,
        num_heads=2,
        ff_dim=32,
        dropout=0.0,
        attention=ATTENTIONS[attention],
        pos_enc=POS_ENCS[pos_enc],
        max_len=32,
        causal=causal,
        **kw,
    )
    return model.double().eval()


@pytest.mark.parametrize("attention,pos_enc", CELLS)
def test_causal_model_ignores_the_future(attention, pos_enc):
    model = make(attention, pos_enc, causal=True)
    ids = torch.randint(1, 11, (2, 12))
    code = model.draw_code(12)
    t = 6
    changed = ids.clone()
    changed[:, t + 1 :] = torch.randint(1, 11, (2, 12 - t - 1))
    with torch.no_grad():
        a, b = model(ids, code=code), model(changed, code=code)
    assert torch.allclose(a[:, : t + 1], b[:, : t + 1], atol=1e-9)
    assert not torch.allclose(a[:, t + 1 :], b[:, t + 1 :], atol=1e-6)


@pytest.mark.parametrize("attention,pos_enc", CELLS)
def test_padded_tokens_do_not_change_real_positions(attention, pos_enc):
    model = make(attention, pos_enc, causal=False)
    ids = torch.randint(1, 11, (2, 10))
    mask = torch.zeros(2, 10, dtype=torch.bool)
    mask[0, 7:] = True
    other = ids.clone()
    other[0, 7:] = torch.randint(1, 11, (3,))
    code = model.draw_code(10)
    with torch.no_grad():
        a, b = model(ids, mask, code=code), model(other, mask, code=code)
        # control: without the mask the same change does reach the real positions
        a_unmasked, b_unmasked = model(ids, code=code), model(other, code=code)
    assert torch.allclose(a[0, :7], b[0, :7], atol=1e-9)
    assert not torch.allclose(a_unmasked[0, :7], b_unmasked[0, :7], atol=1e-6)


@pytest.mark.parametrize("attention,pos_enc", CELLS)
def test_recurrent_steps_equal_the_parallel_form(attention, pos_enc):
    model = make(attention, pos_enc, causal=True)
    ids = torch.randint(1, 11, (2, 9))
    code = model.draw_code(9)
    with torch.no_grad():
        parallel = model(ids, code=code)
        state = model.init_state(2, dtype=torch.float64)
        steps = []
        for t in range(ids.shape[1]):
            h, state = model.step(ids[:, t], state, code=code)
            steps.append(h)
    assert torch.allclose(torch.stack(steps, dim=1), parallel, atol=1e-8)


def test_step_without_a_code_is_refused_for_spe():
    model = make("linear", "sinespe", causal=True)
    state = model.init_state(1, dtype=torch.float64)
    with pytest.raises(ValueError, match="draw_code"):
        model.step(torch.tensor([1]), state)


@pytest.mark.parametrize("pos_enc", ["sinespe", "convspe"])
def test_per_layer_codes_have_their_own_parameters(pos_enc):
    shared = make("linear", pos_enc, causal=False)
    separate = make("linear", pos_enc, causal=False, share_code=False)
    n_shared = sum(p.numel() for p in shared.parameters())
    n_separate = sum(p.numel() for p in separate.parameters())
    assert n_separate > n_shared
    codes = separate.draw_code(8)
    assert isinstance(codes, list) and len(codes) == 2
    out = separate(torch.randint(1, 11, (2, 8)), code=codes)
    assert out.shape == (2, 8, 16) and torch.isfinite(out).all()


@pytest.mark.parametrize(
    "attention,pos_enc", [("performer", "sinespe"), ("linear", "convspe"), ("softmax", "learned"), ("softmax", "rope")]
)
def test_every_parameter_gets_a_gradient(attention, pos_enc):
    model = make(attention, pos_enc, causal=False).train()
    head = ClassificationHead(16, 3).double()
    ids = torch.randint(1, 11, (3, 10))
    loss = torch.nn.functional.cross_entropy(head(model(ids)), torch.tensor([0, 1, 2]))
    loss.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing, f"no finite gradient for {missing}"


def test_cls_pooling_uses_the_prepended_vector():
    model = make("softmax", "learned", causal=False, prepend_cls=True)
    ids = torch.randint(1, 11, (2, 6))
    mask = torch.zeros(2, 6, dtype=torch.bool)
    mask[1, 4:] = True
    hidden = model(ids, mask)
    assert hidden.shape == (2, 7, 16)
    head = ClassificationHead(16, 2, pooling="cls").double()
    assert torch.allclose(head(hidden, mask), head.mlp(hidden[:, 0]))


def test_mean_pooling_ignores_padding_and_dual_head_is_symmetric_in_shape():
    hidden = torch.randn(2, 5, 4, dtype=torch.float64)
    mask = torch.tensor([[False] * 5, [False, False, True, True, True]])
    head = DualClassificationHead(4, 2).double()
    u = hidden[1, :2].mean(0)
    from spelab.nn.heads import pool

    assert torch.allclose(pool(hidden, mask, "mean")[1], u)
    assert head(hidden, mask, hidden.flip(0), mask.flip(0)).shape == (2, 2)


def test_lm_head_can_tie_weights():
    model = make("linear", "none", causal=True)
    head = LMHead(16, 11, tie_to=model.embed)
    assert head.proj.weight is model.embed.weight


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(d_model=10, num_heads=3), "num_heads=3 must divide d_model=10"),
        (dict(num_layers=0), "num_layers must be a positive integer"),
        (dict(dropout=1.0), "dropout"),
        (dict(vocab_size=-1), "vocab_size"),
    ],
)
def test_bad_arguments_are_named(kwargs, match):
    args = dict(vocab_size=11, d_model=16, num_layers=1, num_heads=2)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        Transformer(**args)


@pytest.mark.parametrize("pos_enc", ["sinespe", "convspe"])
def test_shared_code_keeps_one_gate_per_layer(pos_enc):
    model = make("linear", pos_enc, causal=False)
    gates = [n for n, _ in model.named_parameters() if n.endswith("gate.gate")]
    assert len(gates) == len(model.blocks), gates
