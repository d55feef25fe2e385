"""The new backends and bias schemes (issue 14) against Performer + no PE: time and memory of one
attention op, fwd+bwd (gradients for q, k, v and every parameter), H=4, D=32, bidirectional unless
marked causal. Reported, no targets: these are the costs a grid cell pays.

- gla, deltanet (chunked PyTorch forms; fla kernels only on CUDA with fla-core installed)
- softmax + alibi / kerple / fire / decay (CPU: the dense (H, N, N) float bias; CUDA: FlexAttention)
- performer / linear + decay (two decayed scans)

Memory: peak CUDA memory on GPU, bytes saved for backward on CPU.
`python -m bench.bench_modern --device cpu|cuda` runs it alone; `python -m bench.run_all` runs all.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch

from bench.common import MiB, Result, main_cli, peak_cuda_mem, resolve_device, run_parts, saved_bytes, time_fn
from spelab.nn.attention import (
    DeltaNetAttention,
    GatedLinearAttention,
    LinearAttention,
    PerformerAttention,
    SoftmaxAttention,
)
from spelab.nn.positional import ALiBi, FIRE, KERPLE, ExponentialDecay

HEADS, DIM, FEATURES = 4, 32, 256


@dataclass(frozen=True)
class Sizes:
    length: int
    batch: int
    repeats: int
    warmup: int
    max_seconds: float


CPU = Sizes(length=1024, batch=2, repeats=5, warmup=1, max_seconds=3.0)
GPU = Sizes(length=8192, batch=2, repeats=10, warmup=3, max_seconds=10.0)

ATTENTION = {
    "performer": lambda: PerformerAttention(DIM, FEATURES, redraw="never"),
    "linear": lambda: LinearAttention(DIM),
    "softmax": lambda: SoftmaxAttention(DIM),
    "gla": lambda: GatedLinearAttention(DIM),
    "deltanet": lambda: DeltaNetAttention(DIM),
}
BIAS = {
    "none": lambda: None,
    "alibi": lambda: ALiBi(HEADS, DIM),
    "kerple": lambda: KERPLE(HEADS, DIM),
    "fire": lambda: FIRE(HEADS, DIM),
    "decay": lambda: ExponentialDecay(HEADS, DIM),
}
CASES = [
    ("gla", "none", False),
    ("gla", "none", True),
    ("deltanet", "none", False),
    ("deltanet", "none", True),
    ("softmax", "none", False),
    ("softmax", "alibi", False),
    ("softmax", "kerple", False),
    ("softmax", "fire", False),
    ("softmax", "decay", False),
    ("performer", "decay", False),
    ("linear", "decay", False),
]


def _case(att: str, bias: str, causal: bool, s: Sizes, dev: torch.device):
    torch.manual_seed(0)
    module, scheme = ATTENTION[att]().to(dev), BIAS[bias]()
    scheme = scheme.to(dev) if scheme is not None else None
    q, k, v = (torch.randn(s.batch, s.length, HEADS, DIM, device=dev, requires_grad=True) for _ in range(3))
    leaves = [q, k, v, *module.parameters(), *(scheme.parameters() if scheme is not None else ())]
    kw = {"bias": scheme} if scheme is not None else {}

    def forward() -> torch.Tensor:
        return module(q, k, v, causal=causal, **kw)

    def run() -> None:
        out = forward()
        torch.autograd.grad(out, leaves, torch.ones_like(out), allow_unused=True)

    return forward, run


def compare(dev: torch.device, s: Sizes) -> list[Result]:
    shape = f"B={s.batch}, N={s.length}, H={HEADS}, D={DIM}"
    cuda = dev.type == "cuda"

    def measure(att, bias, causal):
        forward, run = _case(att, bias, causal, s, dev)
        t = time_fn(run, dev, repeats=s.repeats, warmup=s.warmup, max_seconds=s.max_seconds)
        m = peak_cuda_mem(run, dev) if cuda else saved_bytes(forward)
        return t, m / MiB

    t0, m0 = measure("performer", "none", False)
    kind = "peak" if cuda else "saved"
    results = [
        Result(f"Performer, no PE, fwd+bwd ({shape})", t0 * 1e3, "ms"),
        Result(f"Performer, no PE, {kind} memory ({shape})", m0, "MiB"),
    ]
    for att, bias, causal in CASES:
        label = f"{att}+{bias}" + (" causal" if causal else "")
        t, m = measure(att, bias, causal)
        results += [
            Result(f"{label} time over Performer ({shape})", t / t0, "x", note=f"{t * 1e3:.1f} ms"),
            Result(f"{label} {kind} memory over Performer ({shape})", m / m0, "x", note=f"{m:.1f} MiB"),
        ]
    return results


def main(device: str = "cpu") -> list[Result]:
    dev = resolve_device(device)
    s = GPU if dev.type == "cuda" else CPU
    return run_parts("modern", dev, (functools.partial(compare, dev, s),))


if __name__ == "__main__":
    main_cli(main, __doc__)
