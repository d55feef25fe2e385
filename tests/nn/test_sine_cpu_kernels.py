"""The compiled CPU kernels of the shared codes (nn/kernels/sine_cpu.cpp, loaded by nn/kernels/cpu.py).

Each kernel against a float64 PyTorch reference at sizes that hit every tail (batch rows not a multiple
of 4, features not a multiple of 8, 2K not a multiple of 4, positions past one panel of 64 and not a
multiple of the build's 6, R of one and of three vectors), then SineSPE and ConvSPE through them
(SPELAB_KERNELS=cpp, float32) against the per-layer float64 reference, and the switch: fallback with
one warning under `auto`, a clear error under `cpp`.
"""

from __future__ import annotations

import pytest
import torch

from spelab.nn import kernels
from spelab.nn.kernels import cpu
from spelab.nn.positional import ConvSPE, SineSPE
from spelab.nn.positional.naive import naive_spe

pytestmark = pytest.mark.needs("the compiled CPU kernels (a C++ compiler and ninja)")


@pytest.fixture(scope="module")
def compiled():
    try:
        return cpu.load_cpu_kernels(required=True)
    except RuntimeError as error:
        pytest.skip(f"cannot build the compiled CPU kernels: {str(error)[:300]}")


def rand(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def tiles_of(shape, layout, seed):
    """A (T, B, X) tensor laid out tile-major (contiguous) or batch-major (a (T, B, X) view of a (B, T, X)
    tensor: how the layers pass their (B, N, H, ·) activations)."""
    t, b, x = shape
    return rand(*shape, seed=seed) if layout == "tiles" else rand(b, t, x, seed=seed).transpose(0, 1)


@pytest.mark.parametrize("layout", ["tiles", "batch"])
@pytest.mark.parametrize("batch", [1, 3, 4, 5])
@pytest.mark.parametrize("realizations", [16, 32, 48, 64])  # R = 1, 2, 4 vectors: fixed paths; 3: general
@pytest.mark.parametrize("dim", [5, 37])  # 37: two blocks of 16 features and a tail
def test_contractions_match_float64(compiled, batch, realizations, dim, layout):
    tiles = 7
    x, g = tiles_of((tiles, batch, dim), layout, 1), tiles_of((tiles, batch, realizations), layout, 2)
    c = rand(tiles, dim, realizations)
    out, out_t = tiles_of((tiles, batch, realizations), layout, 3), tiles_of((tiles, batch, dim), layout, 4)
    compiled.contract(x, c, out)  # written in place, whatever was there
    compiled.contract_t(g, c, out_t)
    torch.testing.assert_close(out, torch.bmm(x.double(), c.double()).float(), rtol=1e-5, atol=1e-5)
    ref_t = torch.bmm(g.double(), c.double().transpose(1, 2)).float()
    torch.testing.assert_close(out_t, ref_t, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("layout", ["tiles", "batch"])
@pytest.mark.parametrize("batch", [1, 2, 5])
@pytest.mark.parametrize("realizations", [16, 48, 64])
@pytest.mark.parametrize("dim", [5, 37])
def test_gated_contractions_match_float64(compiled, batch, realizations, dim, layout):
    """Through one layer's gated code keep_h·c[t] (tile t = n·H + h): out, dx and dkeep."""
    heads, positions = 3, 5
    tiles = heads * positions
    x, g = tiles_of((tiles, batch, dim), layout, 1), tiles_of((tiles, batch, realizations), layout, 2)
    c, keep = rand(tiles, dim, realizations), rand(heads, dim, seed=5)
    out, dx = tiles_of((tiles, batch, realizations), layout, 3), tiles_of((tiles, batch, dim), layout, 4)
    d_keep = torch.full((heads, dim), float("nan"))
    compiled.contract_gated(x, c, keep, out)
    compiled.contract_t_gated(g, c, x, keep, dx, d_keep)
    x64, g64, c64 = x.double(), g.double(), c.double()
    gated = keep.double().repeat(positions, 1)[..., None] * c64
    torch.testing.assert_close(out, torch.bmm(x64, gated).float(), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(dx, torch.bmm(g64, gated.transpose(1, 2)).float(), rtol=1e-5, atol=1e-5)
    u = torch.bmm(g64, c64.transpose(1, 2))  # (T, B, D)
    ref_keep = (x64 * u).sum(1).view(positions, heads, dim).sum(0)
    torch.testing.assert_close(d_keep, ref_keep.float(), rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("n", [1, 7, 13])
@pytest.mark.parametrize("realizations", [16, 48])
def test_build_matches_float64(compiled, n, realizations):
    heads, dim, two_k = 3, 5, 6
    omega, w = rand(heads * dim, n, two_k, seed=3), rand(2, heads * dim, two_k, realizations, seed=4)
    out = torch.full((2, n * heads, dim, realizations), float("nan"))
    compiled.build(omega.transpose(1, 2).contiguous(), w, heads, out)  # it reads Ωᵀ (H·D, 2K, n)
    ref = torch.matmul(omega.double(), w.double())  # (2, H·D, n, R)
    ref = ref.view(2, heads, dim, n, realizations).permute(0, 3, 1, 2, 4).reshape(out.shape)
    torch.testing.assert_close(out, ref.float(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "n,realizations,batches", [(70, 16, (3,)), (9, 48, (1,)), (64, 32, (2, 1, 4)), (130, 64, (2,))]
)
@pytest.mark.parametrize("sines", [3, 8])  # 2K = 6: rows of Z in blocks of 4 and 2; 2K = 16: four blocks of 4
def test_code_sums_match_float64(compiled, n, realizations, batches, sines):
    """out[w, a, b, k] = Σ_n t^w Ω[n, a·K + k] (dC[n]·Z[b·K + k]), t = start + n; dC summed over the
    layers (batches: one entry per layer, its (x, g) read in place); positions past one or two panels."""
    heads, dim, two_k, start = 2, 11, 2 * sines, 7  # 11 features: one group of 8 and a tail of 3
    omega, noise = rand(heads * dim, n, two_k, seed=5), rand(heads * dim, two_k, realizations, seed=8)
    # the layers' (x, g) as handed over, in either layout
    x_layouts, g_layouts = ["batch", "tiles", "batch"], ["batch", "batch", "tiles"]
    xs = [tiles_of((n * heads, b, dim), x_layouts[i], 6 + i) for i, b in enumerate(batches)]
    gs = [tiles_of((n * heads, b, realizations), g_layouts[i], 60 + i) for i, b in enumerate(batches)]
    got = compiled.code_sums(omega.transpose(1, 2).contiguous(), xs, gs, [], noise, heads, start)
    keeps = [rand(heads, dim, seed=90 + i) for i in range(len(batches))]  # each layer's gate
    gated = compiled.code_sums(omega.transpose(1, 2).contiguous(), xs, gs, keeps, noise, heads, start)
    for out, gate in ((got, None), (gated, keeps)):
        check_code_sums(out, xs, gs, gate, omega, noise, heads, dim, n, realizations, sines, start)


def check_code_sums(got, xs, gs, keeps, omega, noise, heads, dim, n, realizations, sines, start):
    if keeps is not None:  # dC = Σ_layers (keep·x)ᵀ g
        xs = [(x.unflatten(0, (n, heads)) * keep[:, None, :]).flatten(0, 1) for x, keep in zip(xs, keeps)]
    x, g = torch.cat(xs, dim=1).double(), torch.cat(gs, dim=1).double()
    d_code = torch.bmm(x.transpose(1, 2), g).view(n, heads * dim, realizations).transpose(0, 1)  # (H·D, n, R)
    prod = torch.bmm(d_code, noise.double().transpose(1, 2))  # (H·D, n, 2K): P[n, j] = dC[n]·Z[j]
    om, k = omega.double(), sines
    t = torch.arange(start, start + n, dtype=torch.float64)[:, None]
    ref = torch.stack(
        [
            torch.stack(
                [
                    torch.stack(
                        [(w * om[..., a * k : a * k + k] * prod[..., b * k : b * k + k]).sum(1) for b in (0, 1)]
                    )
                    for a in (0, 1)
                ]
            )
            for w in (torch.ones_like(t), t)
        ]
    )  # (2, 2, 2, H·D, K)
    torch.testing.assert_close(got.double(), ref.permute(3, 0, 1, 2, 4), rtol=1e-4, atol=1e-5 * ref.abs().max().item())


def test_kernels_reject_what_they_cannot_do(compiled):
    with pytest.raises(RuntimeError, match="R must be a multiple of 16"):
        compiled.contract(rand(2, 1, 3), rand(2, 3, 8), rand(2, 1, 8))
    with pytest.raises(RuntimeError, match="must be float32"):
        compiled.contract(rand(2, 1, 3).double(), rand(2, 3, 16).double(), rand(2, 1, 16).double())
    with pytest.raises(RuntimeError, match="g must have contiguous rows"):
        compiled.contract_t(rand(2, 16, 2).transpose(1, 2), rand(2, 3, 16), rand(2, 2, 3))
    with pytest.raises(RuntimeError, match=r"out \[2, 1, 8\]"):
        compiled.contract(rand(2, 1, 3), rand(2, 3, 16), rand(2, 1, 8))
    with pytest.raises(RuntimeError, match=r"keep \[2, 4\] for 2 tiles \(positions x heads\) of 3 features"):
        compiled.contract_gated(rand(2, 1, 3), rand(2, 3, 16), rand(2, 4), rand(2, 1, 16))
    with pytest.raises(RuntimeError, match=r"keep \[2, 3\] for 3 tiles"):
        compiled.contract_gated(rand(3, 1, 3), rand(3, 3, 16), rand(2, 3), rand(3, 1, 16))


H, D, R = 2, 5, 32


def make(kind: str):
    torch.manual_seed(0)
    if kind == "conv":
        spe = ConvSPE(H, D, num_realizations=R, kernel_size=4)
    else:
        spe = SineSPE(H, D, num_realizations=R, num_sines=3)
        spe.strategy = "shared"
    return spe, [spe.make_gate() for _ in range(3)]


@pytest.mark.parametrize("kind", ["sine", "conv"])
def test_three_layers_through_the_kernels_match_the_float64_reference(compiled, kind, monkeypatch):
    """float32 through the compiled kernels (SPELAB_KERNELS=cpp) against the per-layer naive reference
    in float64: outputs and the gradients of q, k, the generator's parameters and every gate."""
    monkeypatch.setenv("SPELAB_KERNELS", "cpp")
    spe, gates = make(kind)
    g = torch.Generator().manual_seed(1)
    n, offset = 70, 2
    q, k = (torch.randn(3, n, H, D, generator=g, requires_grad=True) for _ in range(2))
    code = spe.draw(n + offset)
    spe64 = type(spe)(H, D, num_realizations=R, **({"kernel_size": 4} if kind == "conv" else {"num_sines": 3}))
    spe64.load_state_dict(spe.state_dict())
    spe64 = spe64.double()
    gates64 = [type(gate)(H, D).double() for gate in gates]
    for a, b in zip(gates64, gates):
        a.load_state_dict(b.state_dict())
    code64 = _double_code(code)
    built = []
    monkeypatch.setattr(type(spe), "_build_shared", _recording(type(spe)._build_shared, built))

    def loss(layer, q, k, gates):
        total = 0
        for i, gate in enumerate(gates):
            a, b = layer(q, k, gate)
            total = total + (a * (i + 1)).sin().sum() + (b**2).sum() * (i + 1)
        return total

    leaves = [
        q,
        k,
        *(p for name, p in spe.named_parameters() if not name.startswith("gate.")),
        *(x.gate for x in gates),
    ]
    leaves64 = [
        *(p for name, p in spe64.named_parameters() if not name.startswith("gate.")),
        *(x.gate for x in gates64),
    ]
    got = torch.autograd.grad(
        loss(lambda q, k, gate: spe(q, k, code=code, offset=offset, gate=gate), q, k, gates), leaves
    )
    q64, k64 = (x.detach().double().requires_grad_() for x in (q, k))
    ref = torch.autograd.grad(
        loss(lambda q, k, gate: naive_spe(spe64, q, k, code64, offset, gate), q64, k64, gates64), [q64, k64, *leaves64]
    )
    assert built and all(shared.kernels is compiled for shared in built), "the compiled kernels did not run"
    assert len(got) == len(ref) == len(leaves)
    for a, b in zip(got, ref):
        scale = b.abs().max().item()
        torch.testing.assert_close(a.double(), b, rtol=2e-4, atol=2e-4 * scale, msg=lambda m: f"{kind}: {m}")


def _double_code(code):
    import dataclasses

    fields = {f.name: getattr(code, f.name) for f in dataclasses.fields(code)}
    fields = {
        k: (v.double() if isinstance(v, torch.Tensor) and v.is_floating_point() else v) for k, v in fields.items()
    }
    fields = {
        k: (v.to(torch.complex128) if isinstance(v, torch.Tensor) and v.is_complex() else v) for k, v in fields.items()
    }
    fields["cache"] = None
    return type(code)(**fields)


def _recording(build, built):
    def wrapper(self, *args, **kwargs):
        entry = build(self, *args, **kwargs)
        built.append(entry[0])
        return entry

    return wrapper


@pytest.mark.parametrize("mode", ["auto", "cpp"])
def test_a_default_sine_spe_runs_under_each_mode_that_takes_the_kernels(compiled, mode, monkeypatch):
    """The module's default strategy ("auto") under SPELAB_KERNELS=auto|cpp: the shared codes through
    the compiled kernels, the same values as the PyTorch paths (SPELAB_KERNELS=torch)."""
    spe = SineSPE(H, D, num_realizations=R, num_sines=3)
    g = torch.Generator().manual_seed(2)
    q, k = (torch.randn(2, 9, H, D, generator=g) for _ in range(2))
    code = spe.draw(9)
    monkeypatch.setenv("SPELAB_KERNELS", "torch")
    ref = spe(q, k, code=code)
    monkeypatch.setenv("SPELAB_KERNELS", mode)
    code.cache = None
    got = spe(q, k, code=code)
    assert code.cache[1][0].kernels is compiled
    for a, b in zip(got, ref):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_torch_mode_keeps_the_pytorch_paths(monkeypatch):
    monkeypatch.setenv("SPELAB_KERNELS", "torch")
    assert kernels.cpu_kernels(torch.zeros(2), 16) is None


def test_auto_takes_the_kernels_only_where_they_apply(compiled, monkeypatch):
    monkeypatch.setenv("SPELAB_KERNELS", "auto")
    x = torch.zeros(2)
    assert kernels.cpu_kernels(x, 64) is compiled
    assert kernels.cpu_kernels(x, 24) is None  # R not a multiple of 16
    assert kernels.cpu_kernels(x.double(), 64) is None  # the float64 reference runs in PyTorch
    assert kernels.cpu_kernels(torch.zeros(2, device="meta"), 64) is None


def test_cpp_mode_on_a_non_cpu_tensor_says_what_to_do(monkeypatch):
    monkeypatch.setenv("SPELAB_KERNELS", "cpp")
    with pytest.raises(RuntimeError, match=r"SPELAB_KERNELS=cpp on a meta tensor: .* use SPELAB_KERNELS=auto"):
        kernels.cpu_kernels(torch.zeros(2, device="meta"), 64)


def test_a_failed_build_warns_once_under_auto_and_raises_under_cpp(monkeypatch):
    def fail():
        raise OSError("no C++ compiler found (g++)")

    monkeypatch.setattr(cpu, "_build", fail)
    monkeypatch.setattr(cpu, "_module", None)
    monkeypatch.setattr(cpu, "_error", None)
    monkeypatch.setattr(cpu.load_cpu_kernels, "_warned", False, raising=False)
    monkeypatch.setenv("SPELAB_KERNELS", "auto")
    with pytest.warns(
        RuntimeWarning, match=r"(?s)could not be built: OSError: no C\+\+ compiler found .* PyTorch paths"
    ):
        assert kernels.cpu_kernels(torch.zeros(2), 64) is None
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no second warning
        assert kernels.cpu_kernels(torch.zeros(2), 64) is None
    monkeypatch.setenv("SPELAB_KERNELS", "cpp")
    with pytest.raises(RuntimeError, match=r"(?s)could not be built.*pip install ninja.*SPELAB_KERNELS=auto\|torch"):
        kernels.cpu_kernels(torch.zeros(2), 64)


def test_the_library_is_kept_per_cpu_and_torch_version():
    import torch as t

    name = cpu.extension_name()
    assert name == f"spelab_sine_cpu_{cpu.cpu_signature()}" and len(cpu.cpu_signature()) == 12
    assert f"torch-{t.__version__}" in str(cpu.build_directory(name))
