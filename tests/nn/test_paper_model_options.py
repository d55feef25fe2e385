"""The options the paper's LRA models need: an attention width (qkv_dim) other than d_model, shared SPE
parameters with a fresh code per layer, Performer features redrawn in evaluation, decay on every parameter."""

from __future__ import annotations

import copy
import functools

import pytest
import torch

from spelab.nn import ConvSPE, LinearAttention, PerformerAttention, SineSPE, SoftmaxAttention, Transformer
from spelab.tasks.optim import param_groups

SPE = {
    "sinespe": functools.partial(SineSPE, num_realizations=8, num_sines=3, gated=True),
    "convspe": functools.partial(ConvSPE, num_realizations=8, kernel_size=5, gated=True),
}


def make(pos_enc=None, attention=LinearAttention, **kw) -> Transformer:
    torch.manual_seed(0)
    model = Transformer(
        vocab_size=11,
        d_model=16,
        num_layers=3,
        num_heads=2,
        ff_dim=32,
        dropout=0.0,
        attention=attention,
        pos_enc=pos_enc,
        max_len=32,
        **kw,
    )
    return model.double()


@pytest.mark.parametrize(
    "attention", [SoftmaxAttention, LinearAttention, functools.partial(PerformerAttention, num_features=16)]
)
@pytest.mark.parametrize("pos_enc", [None, "sinespe"])
def test_qkv_dim_sets_the_attention_width(attention, pos_enc) -> None:
    model = make(SPE.get(pos_enc), attention, qkv_dim=8).eval()
    block = model.blocks[0]
    assert block.qkv.weight.shape == (3 * 8, 16) and block.out.weight.shape == (16, 8)
    assert block.head_dim == 4
    out = model(torch.randint(1, 11, (2, 9)))
    assert out.shape == (2, 9, 16) and torch.isfinite(out).all()
    assert make(SPE.get(pos_enc), attention).blocks[0].qkv.weight.shape == (3 * 16, 16)  # default: d_model


def test_qkv_dim_recurrent_steps_equal_the_parallel_form() -> None:
    model = make(SPE["sinespe"], qkv_dim=8, causal=True).eval()
    ids = torch.randint(1, 11, (2, 7))
    code = model.draw_code(7)
    full = model(ids, code=code)
    state = model.init_state(2)
    steps = []
    for t in range(7):
        h, state = model.step(ids[:, t], state, code=code)
        steps.append(h)
    torch.testing.assert_close(torch.stack(steps, 1), full)


def test_qkv_dim_must_split_into_heads() -> None:
    with pytest.raises(ValueError, match="qkv_dim=9"):
        make(qkv_dim=9)


@pytest.mark.parametrize("pos_enc", ["sinespe", "convspe"])
def test_code_per_layer_shares_parameters_but_draws_one_code_per_layer(pos_enc) -> None:
    shared = make(SPE[pos_enc])
    per_layer = make(SPE[pos_enc], code_per_layer=True)
    assert sum(p.numel() for p in per_layer.parameters()) == sum(p.numel() for p in shared.parameters())
    codes = per_layer.draw_code(9)
    assert isinstance(codes, list) and len(codes) == 3 and len({id(c) for c in codes}) == 3
    assert not isinstance(shared.draw_code(9), list)
    # distinct draws: the layers see different positional noise
    a, b = (c.gate_noise for c in codes[:2])
    assert not torch.equal(a, b)


@pytest.mark.parametrize("pos_enc", ["sinespe", "convspe"])
def test_per_layer_code_objects_give_the_shared_result_when_equal(pos_enc) -> None:
    """Three code objects with one content: outputs and every gradient equal the single shared code's."""
    model = make(SPE[pos_enc], code_per_layer=True).train()
    ids = torch.randint(1, 11, (2, 9))
    code = model.relative.draw(9)
    results = []
    for c in (code, [code, copy.deepcopy(code), copy.deepcopy(code)]):
        model.zero_grad()
        out = model(ids, code=c)
        (out.square().sum()).backward()
        results.append((out.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}))
    torch.testing.assert_close(results[1][0], results[0][0])
    for name, grad in results[0][1].items():
        torch.testing.assert_close(results[1][1][name], grad, msg=name)


def test_code_per_layer_trains_every_parameter() -> None:
    model = make(SPE["convspe"], code_per_layer=True).train()
    model(torch.randint(1, 11, (2, 9))).square().sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


def test_performer_redraw_eval_draws_on_every_eval_call_only_when_asked() -> None:
    q, k, v = (torch.randn(1, 6, 2, 4) for _ in range(3))

    def changes(att: PerformerAttention, calls: int) -> list[bool]:
        flags = []
        for _ in range(calls):
            before = att.projection.clone()
            att(q, k, v)
            flags.append(not torch.equal(before, att.projection))
        return flags

    assert changes(PerformerAttention(4, num_features=8, redraw_eval=True).eval(), 3) == [True] * 3
    assert changes(PerformerAttention(4, num_features=8).eval(), 3) == [False] * 3
    assert changes(PerformerAttention(4, num_features=8, redraw_eval=True).train(), 3) == [False, True, True]


def test_weight_decay_all_puts_every_parameter_in_the_decayed_group() -> None:
    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.LayerNorm(4))
    everything = param_groups(model, 0.1, decay_all=True)
    assert len(everything) == 1 and len(everything[0]["params"]) == 4 and everything[0]["weight_decay"] == 0.1
    matrices = param_groups(model, 0.1)
    assert [len(g["params"]) for g in matrices] == [1, 3] and matrices[1]["weight_decay"] == 0.0


@pytest.mark.parametrize(
    "interaction,layers,widths", [("nli", 1, [(64, 8), (8, 2)]), ("concat", 2, [(32, 8), (8, 4), (4, 2)])]
)
def test_dual_head_interaction_and_depth(interaction, layers, widths) -> None:
    from spelab.nn import DualClassificationHead

    head = DualClassificationHead(16, 2, mlp_dim=8, interaction=interaction, layers=layers)
    linears = [m for m in head.modules() if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == widths
    h = torch.randn(3, 5, 16)
    assert head(h, None, h.flip(0), None).shape == (3, 2)
    with pytest.raises(ValueError, match="interaction"):
        DualClassificationHead(16, 2, interaction="sum")
