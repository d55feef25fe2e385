"""ALiBi, KERPLE, FIRE, decay, xPos, 2-D rotary and CAPE: formulas, shift invariance of the relative
schemes, softmax + bias against explicit logits (float64), the path log, and the Transformer with each
scheme: causality, padding, recurrent = parallel, gradients reach every parameter."""

from __future__ import annotations

import logging
import math

import pytest
import torch

from spelab.nn import Transformer
from spelab.nn.attention import (
    DeltaNetAttention,
    GatedLinearAttention,
    LinearAttention,
    PerformerAttention,
    SoftmaxAttention,
)
from spelab.nn.attention import biased_softmax
from spelab.nn.positional import (
    ALiBi,
    CAPE,
    FIRE,
    KERPLE,
    ExponentialDecay,
    RoPE2D,
    RotaryEmbedding,
    SinusoidalPositionalEncoding,
    XPos,
)
from spelab.nn.positional.alibi import alibi_slopes

H, D = 4, 8
BIAS = {
    "alibi": ALiBi,
    "kerple": KERPLE,
    "decay": ExponentialDecay,
    "fire": lambda h, d: FIRE(h, d, init_threshold=1000.0),
}


def test_alibi_slopes_are_the_standard_ones():
    torch.testing.assert_close(alibi_slopes(8), torch.tensor([2.0 ** -(i + 1) for i in range(8)]))
    # 6 heads: the 4-head slopes, then every other slope of the 8-head set
    torch.testing.assert_close(alibi_slopes(6), torch.tensor([2**-2, 2**-4, 2**-6, 2**-8, 2**-1, 2**-3]))


def test_bias_formulas():
    i, j = torch.arange(5)[:, None], torch.arange(5)[None]
    dist = (i - j).abs().float()
    alibi = ALiBi(2, D)
    torch.testing.assert_close(alibi.dense(torch.arange(5), torch.arange(5)), -alibi.slopes[:, None, None] * dist)
    kerple = KERPLE(2, D)
    r1, r2 = (torch.nn.functional.softplus(p) for p in (kerple.r1_raw, kerple.r2_raw))
    torch.testing.assert_close(
        kerple.dense(torch.arange(5), torch.arange(5)), -r1[:, None, None] * torch.log1p(r2[:, None, None] * dist)
    )
    decay = ExponentialDecay(2, D)
    gamma = 1 - 2.0 ** -torch.tensor([5.0, 6.0])
    torch.testing.assert_close(decay.dense(torch.arange(5), torch.arange(5)), gamma.log()[:, None, None] * dist)
    fire = FIRE(2, D, init_threshold=3.0)  # max(L, i): rows past L normalise by their own position
    c = torch.nn.functional.softplus(fire.c_raw)
    x = torch.log1p(c * dist) / torch.log1p(c * torch.maximum(torch.tensor(3.0), i.float()))
    ref = fire.mlp(x[..., None]).permute(2, 0, 1)
    torch.testing.assert_close(fire.dense(torch.arange(5), torch.arange(5)), ref)
    h = torch.arange(2)[:, None, None]
    torch.testing.assert_close(fire.bias_at(h, i[None], j[None]), ref)  # the elementwise (flex) form agrees


@pytest.mark.parametrize("name", list(BIAS))
def test_bias_depends_only_on_the_distance(name):
    scheme = BIAS[name](H, D)
    pos = torch.arange(9)
    torch.testing.assert_close(scheme.dense(pos + 37, pos + 37), scheme.dense(pos, pos))
    if name != "fire":  # FIRE's bias is a function of i - j, through an MLP: no closed form to compare
        b = scheme.dense(pos, pos)
        torch.testing.assert_close(b, b.transpose(1, 2))


def _qk(n=7, dim=D, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(2, n, H, dim, generator=g, dtype=torch.float64) for _ in range(2))


def test_xpos_scores_depend_only_on_the_offset_difference():
    xpos = XPos(H, D, scale_base=8.0).double()
    q, k = _qk()
    s0 = torch.einsum("bthd,bshd->bhts", *xpos(q, k, offset=0))
    s1 = torch.einsum("bthd,bshd->bhts", *xpos(q, k, offset=25))
    torch.testing.assert_close(s0, s1)
    plain = torch.einsum("bthd,bshd->bhts", *RotaryEmbedding(H, D).double()(q, k))
    assert not torch.allclose(s0, plain)  # the scaling is there
    torch.testing.assert_close(s0.diagonal(dim1=-2, dim2=-1), plain.diagonal(dim1=-2, dim2=-1))  # 1 at lag 0


def test_xpos_step_matches_full():
    xpos = XPos(H, D).double()
    q, k = _qk()
    fq, fk = xpos(q, k)
    for t in range(q.shape[1]):
        sq, sk = xpos(q[:, t : t + 1], k[:, t : t + 1], offset=t)
        torch.testing.assert_close(sq[:, 0], fq[:, t])
        torch.testing.assert_close(sk[:, 0], fk[:, t])


@pytest.mark.parametrize("lead", [0, 1])
def test_rope2d_scores_depend_only_on_row_and_column_differences(lead):
    side = 4
    rope = RoPE2D(H, D).double()
    q, k = _qk(n=side * side + lead)
    # the same content at every position: the score is a function of (d_row, d_col) only
    q, k = q[:, :1].expand_as(q), k[:, :1].expand_as(k)
    s = torch.einsum("bthd,bshd->bhts", *rope(q, k))[..., lead:, lead:]
    pix = torch.arange(side * side)
    rows, cols = pix // side, pix % side
    for a, b in [(0, 5), (1, 6), (10, 15)]:  # both pairs are (+1 row, +1 col)
        torch.testing.assert_close(s[..., a, b], s[..., 0, 5])
    assert not torch.allclose(s[..., 0, 1], s[..., 0, side])  # a row step differs from a column step
    assert rows[5] - rows[0] == 1 and cols[5] - cols[0] == 1
    if lead:  # the [CLS] vector is left unrotated
        q2, k2 = rope(q, k)
        torch.testing.assert_close(q2[:, 0], q[:, 0])


def test_rope2d_refuses_a_sequence_that_is_no_square_image():
    with pytest.raises(ValueError, match="not a square image"):
        RoPE2D(H, D)(*_qk(n=7))
    with pytest.raises(ValueError, match="multiple of 4"):
        RoPE2D(H, 6)


def test_cape_is_sinusoidal_in_eval_and_augmented_in_training():
    cape = CAPE(16, max_len=64).eval()
    x = torch.zeros(3, 10, 16)
    ref = SinusoidalPositionalEncoding(16, 64)(x)
    torch.testing.assert_close(cape(x), ref)
    cape.train()
    torch.manual_seed(0)
    a = cape(x)
    assert not torch.allclose(a, ref) and not torch.allclose(a[0], a[1])  # per-sequence shift
    pos = cape.positions(1000, 10, 0, torch.device("cpu"))
    t = torch.arange(10.0)
    assert (pos - t).abs().max() <= 1.03 * (10 + 5.5) - 10 + 1e-4  # bounded by shift, jitter and scale


def test_softmax_bias_matches_explicit_logits_causal_and_padded():
    att = SoftmaxAttention(key_dim=D).double()
    alibi = ALiBi(H, D).double()
    q, k = _qk(n=9)
    v = torch.randn(2, 9, H, 5, dtype=torch.float64)
    mask = torch.zeros(2, 9, dtype=torch.bool)
    mask[0, :2] = True
    for causal in (False, True):
        logits = (
            torch.einsum("bthd,bshd->bhts", q, k) / math.sqrt(D)
            + alibi.dense(torch.arange(9), torch.arange(9)).double()
        )
        keep = ~mask[:, None, None, :]
        if causal:
            keep = keep & torch.ones(9, 9, dtype=torch.bool).tril()
        w = logits.masked_fill(~keep, float("-inf")).softmax(-1).nan_to_num(0.0)
        ref = torch.einsum("bhts,bshe->bthe", w, v)
        torch.testing.assert_close(att(q, k, v, causal=causal, key_padding_mask=mask, bias=alibi), ref)


def test_the_bias_path_is_logged_once(caplog):
    biased_softmax._LOGGED.clear()
    att, alibi = SoftmaxAttention(key_dim=D), ALiBi(H, D)
    q, k = (torch.randn(1, 5, H, D) for _ in range(2))
    with caplog.at_level(logging.INFO, logger="spelab.nn.attention.biased_softmax"):
        att(q, k, q, bias=alibi)
        att(q, k, q, bias=alibi)
    msgs = [r.getMessage() for r in caplog.records if "path" in r.getMessage()]
    assert len(msgs) == 1 and "dense path" in msgs[0] and "not on CUDA" in msgs[0]


# ------------------------------------------------------------------ the Transformer with each scheme
ATTENTION = {
    "softmax": SoftmaxAttention,
    "performer": lambda key_dim: PerformerAttention(key_dim, 16, redraw="never"),
    "linear": LinearAttention,
    "gla": GatedLinearAttention,
    "deltanet": DeltaNetAttention,
}
SCHEMES = {"alibi": ALiBi, "kerple": KERPLE, "fire": FIRE, "decay": ExponentialDecay, "xpos": XPos, "cape": CAPE}
PAIRS = [
    (a, p)
    for p in SCHEMES
    for a in ATTENTION
    if getattr(SCHEMES[p], "backends", None) is None or a in SCHEMES[p].backends
]


def _model(att, pos, causal, share_code=True):
    torch.manual_seed(0)
    return Transformer(
        vocab_size=11,
        d_model=16,
        num_layers=2,
        num_heads=2,
        ff_dim=16,
        dropout=0.0,
        attention=ATTENTION[att],
        pos_enc=SCHEMES[pos],
        max_len=32,
        causal=causal,
        share_code=share_code,
    ).double()


@pytest.mark.parametrize("att, pos", PAIRS)
def test_transformer_step_matches_forward_and_is_causal(att, pos):
    model = _model(att, pos, causal=True).eval()
    ids = torch.randint(1, 11, (2, 9))
    full = model(ids)
    other = ids.clone()
    other[:, 6:] = torch.randint(1, 11, (2, 3))
    torch.testing.assert_close(model(other)[:, :6], full[:, :6])
    state = model.init_state(2, dtype=torch.float64)
    for t in range(ids.shape[1]):
        out, state = model.step(ids[:, t], state)
        torch.testing.assert_close(out, full[:, t], rtol=1e-8, atol=1e-8)


@pytest.mark.parametrize("att, pos", PAIRS)
def test_transformer_padding_and_gradients(att, pos):
    model = _model(att, pos, causal=False, share_code=pos != "fire").train()
    ids = torch.randint(1, 11, (2, 9))
    mask = torch.zeros(2, 9, dtype=torch.bool)
    mask[:, 6:] = True
    model.eval()
    padded = model(ids, padding_mask=mask)[:, :6]
    other = ids.clone()
    other[:, 6:] = torch.randint(1, 11, (2, 3))
    torch.testing.assert_close(model(other, padding_mask=mask)[:, :6], padded)
    model.train()
    model(ids, padding_mask=mask)[:, :6].square().sum().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or p.grad.abs().sum() == 0]
    assert not missing, missing


def test_fire_has_an_mlp_per_layer_with_a_shared_scheme():
    model = _model("softmax", "fire", causal=False)
    mlps = {id(m) for m in model.modules() if isinstance(m, FIRE)}
    assert len(mlps) == 2
