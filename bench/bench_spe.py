"""SPE benchmarks: the cost of sineSPE / convSPE in front of a Performer, each figure beside its target.

Attention op only, fwd+bwd (gradients for q, k, v and every SPE parameter), gated SPE with a fresh
code per call (training), non-causal Performer with 256 features; H=8, D=64, R=64, K=10, P=128.
Ratios are measured in this one process (README "Benchmarks" lists each target):

- time (Performer + sineSPE) / Performer: CPU N=1024, B=4 <= 2.0x; GPU N=16384, B=2 <= 1.5x   [G7]
- peak memory (Performer + sineSPE) / Performer, GPU N=16384, B=2 <= 1.25x                   [G9]
- time (Performer + convSPE) / Performer, GPU N=16384, B=2 <= 2x (CPU: reported)             [G8]
- the sineSPE ratios again with bf16 autocast on both sides (GPU only; how GPU training runs)
- the fused Triton sineSPE kernels against the PyTorch path (SPELAB_KERNELS=triton vs torch), time
  and peak memory, fp32 and bf16 (GPU with triton; on a CPU only under TRITON_INTERPRET=1, as a smoke
  run of the code path: interpreter times mean nothing)
- memory per token flat in N with sineSPE: peak(N=16k, B=1) / peak(N=1k, B=16) <= 2 on GPU;
  on CPU saved bytes of N=2048, B=1 over N=256, B=8                                          [G6]

`python -m bench.bench_spe --device cpu|cuda` runs it alone; `python -m bench.run_all` runs all.
"""

from __future__ import annotations

import os
import statistics
from dataclasses import dataclass

import torch

from bench.common import (
    MiB,
    Result,
    peak_cuda_mem,
    main_cli,
    resolve_device,
    saved_bytes,
    time_fn,
    run_parts,
)
from spelab.nn.attention import PerformerAttention
from spelab.nn.kernels import ENV, interpreting, triton_available
from spelab.nn.positional import ConvSPE, SineSPE

HEADS, DIM, REALIZATIONS, SINES, KERNEL, FEATURES = 8, 64, 64, 10, 128, 256


@dataclass(frozen=True)
class Sizes:
    length: int  # N of the time/memory ratios
    batch: int
    flat: tuple[tuple[int, int], tuple[int, int]]  # (N, B) long and short, same tokens
    repeats: int
    warmup: int
    time_target: float  # sineSPE time ratio
    conv_target: float | None


CPU = Sizes(length=1024, batch=4, flat=((2048, 1), (256, 8)), repeats=5, warmup=2, time_target=2.0, conv_target=None)
GPU = Sizes(
    length=16384, batch=2, flat=((16384, 1), (1024, 16)), repeats=10, warmup=3, time_target=1.5, conv_target=2.0
)
GPU_MEMORY_TARGET = 1.25


class Case:
    """Inputs and modules of one configuration; `run()` is one fwd+bwd, `forward()` the forward only."""

    def __init__(self, scheme: str | None, length: int, batch: int, device: torch.device, amp: bool = False) -> None:
        self.amp = amp
        g = torch.Generator(device="cpu").manual_seed(0)
        shape = (batch, length, HEADS, DIM)
        self.q, self.k, self.v = (torch.randn(shape, generator=g).to(device).requires_grad_() for _ in range(3))
        if scheme == "sine":
            self.spe = SineSPE(HEADS, DIM, REALIZATIONS, num_sines=SINES, gated=True).to(device)
        elif scheme == "conv":
            self.spe = ConvSPE(HEADS, DIM, REALIZATIONS, kernel_size=KERNEL, gated=True).to(device)
        else:
            self.spe = None
        key_dim = REALIZATIONS if self.spe is not None else DIM
        self.attn = PerformerAttention(key_dim=key_dim, num_features=FEATURES).to(device).train()
        self.leaves = [self.q, self.k, self.v] + (list(self.spe.parameters()) if self.spe is not None else [])

    def forward(self) -> torch.Tensor:
        with torch.autocast(self.q.device.type, dtype=torch.bfloat16, enabled=self.amp):
            q, k = (self.q, self.k) if self.spe is None else self.spe(self.q, self.k)
            return self.attn(q, k, self.v)

    def run(self) -> None:
        out = self.forward()
        torch.autograd.grad(out, self.leaves, torch.ones_like(out))


class KernelMode:
    """A case run with SPELAB_KERNELS set to `mode` (restored after each call)."""

    def __init__(self, case: Case, mode: str) -> None:
        self.case, self.mode = case, mode

    def _with_mode(self, fn):
        old = os.environ.get(ENV)
        os.environ[ENV] = self.mode
        try:
            return fn()
        finally:
            if old is None:
                os.environ.pop(ENV, None)
            else:
                os.environ[ENV] = old

    def forward(self) -> torch.Tensor:
        return self._with_mode(self.case.forward)

    def run(self) -> None:
        self._with_mode(self.case.run)


class Bench:
    def __init__(self, device: torch.device, sizes: Sizes) -> None:
        self.dev, self.s, self.cuda = device, sizes, device.type == "cuda"

    def _times(self, *cases: Case) -> list[float]:
        """Median fwd+bwd time of each case, timed in alternation (A B C A B C ...) so that a change of
        machine load during the measurement affects all of them alike."""
        for case in cases:
            for _ in range(self.s.warmup):
                case.run()
        samples: list[list[float]] = [[] for _ in cases]
        for _ in range(self.s.repeats):
            for case, out in zip(cases, samples):
                out.append(time_fn(case.run, self.dev, repeats=1, warmup=0))
        return [statistics.median(x) for x in samples]

    def _memory(self, case: Case) -> float:
        """Peak CUDA memory of fwd+bwd (GPU) or bytes saved for backward (CPU), in MiB."""
        if self.cuda:
            return peak_cuda_mem(case.run, self.dev) / MiB
        return saved_bytes(case.forward) / MiB

    def overhead(self) -> list[Result]:
        s = self.s
        shape = f"N={s.length}, B={s.batch}"
        cases = {name: Case(name, s.length, s.batch, self.dev) for name in (None, "sine", "conv")}
        memory = {name: self._memory(case) for name, case in cases.items()}
        # each scheme timed in alternation with the baseline alone: convSPE's large FFT buffers would
        # otherwise change the allocator's state (and so the times) of the cases around them
        times, base_times = {}, {}
        for scheme in ("sine", "conv"):
            base_times[scheme], times[scheme] = self._times(cases[None], cases[scheme])
        del cases
        m_base = memory[None]
        results = [
            Result(f"Performer fwd+bwd ({shape})", base_times["sine"] * 1e3, "ms"),
            Result(f"Performer {'peak' if self.cuda else 'saved'} memory ({shape})", m_base, "MiB"),
        ]
        for scheme, target in (("sine", s.time_target), ("conv", s.conv_target)):
            t, t_base, m = times[scheme], base_times[scheme], memory[scheme]  # each over its own pair's baseline
            results += [
                Result(
                    f"Performer+{scheme}SPE fwd+bwd ({shape})",
                    t * 1e3,
                    "ms",
                    note=f"Performer in the same alternation: {t_base * 1e3:.1f} ms",
                ),
                Result(
                    f"{scheme}SPE time ratio over Performer ({shape})",
                    t / t_base,
                    "x",
                    target,
                    "<=",
                    note="G7" if scheme == "sine" else "G8",
                ),
                Result(
                    f"{scheme}SPE {'peak' if self.cuda else 'saved'} memory ratio over Performer ({shape})",
                    m / m_base,
                    "x",
                    GPU_MEMORY_TARGET if (scheme == "sine" and self.cuda) else None,
                    "<=",
                    note="G9" if scheme == "sine" else "",
                ),
            ]
        return results

    def autocast(self) -> list[Result]:
        """The same sineSPE ratios with bf16 autocast on both sides (how GPU training runs)."""
        if not self.cuda:
            return []
        s = self.s
        shape = f"N={s.length}, B={s.batch}, bf16 autocast"
        base = Case(None, s.length, s.batch, self.dev, amp=True)
        case = Case("sine", s.length, s.batch, self.dev, amp=True)
        m_base, m = self._memory(base), self._memory(case)
        t_base, t = self._times(base, case)
        return [
            Result(f"Performer fwd+bwd ({shape})", t_base * 1e3, "ms"),
            Result(f"Performer+sineSPE fwd+bwd ({shape})", t * 1e3, "ms"),
            Result(
                f"sineSPE time ratio over Performer ({shape})", t / t_base, "x", s.time_target, "<=", note="G7, bf16"
            ),
            Result(
                f"sineSPE peak memory ratio over Performer ({shape})",
                m / m_base,
                "x",
                GPU_MEMORY_TARGET,
                "<=",
                note="G9, bf16",
            ),
        ]

    def kernels(self) -> list[Result]:
        """Performer + sineSPE through the Triton kernels over the PyTorch path, fp32 and bf16."""
        s = self.s
        if not triton_available() or not (self.cuda or interpreting()):
            why = "triton not installed" if not triton_available() else "CPU without TRITON_INTERPRET=1"
            return [Result("sineSPE Triton kernels over the PyTorch path", float("nan"), "x", note=f"skipped: {why}")]
        results = []
        for amp in (False, True) if self.cuda else (False,):
            shape = f"N={s.length}, B={s.batch}" + (", bf16 autocast" if amp else "")
            case = Case("sine", s.length, s.batch, self.dev, amp=amp)
            runs = {mode: KernelMode(case, mode) for mode in ("torch", "triton")}
            memory = {mode: self._memory(run) for mode, run in runs.items()}
            t_torch, t_triton = self._times(runs["torch"], runs["triton"])
            results += [
                Result(
                    f"Performer+sineSPE fwd+bwd, Triton kernels ({shape})",
                    t_triton * 1e3,
                    "ms",
                    note=f"PyTorch path in the same alternation: {t_torch * 1e3:.1f} ms",
                ),
                Result(
                    f"sineSPE Triton kernels time over the PyTorch path ({shape})",
                    t_triton / t_torch,
                    "x",
                    1.0 if self.cuda else None,
                    "<=",
                ),
                Result(
                    f"sineSPE Triton kernels {'peak' if self.cuda else 'saved'} memory over the PyTorch path ({shape})",
                    memory["triton"] / memory["torch"],
                    "x",
                    1.0 if self.cuda else None,
                    "<=",
                ),
            ]
        return results

    def memory_flat(self) -> list[Result]:
        (n_long, b_long), (n_short, b_short) = self.s.flat
        long_ = self._memory(Case("sine", n_long, b_long, self.dev))
        short = self._memory(Case("sine", n_short, b_short, self.dev))
        kind = "peak" if self.cuda else "saved"
        return [
            Result(
                f"sineSPE+Performer {kind} memory per token, N={n_long},B={b_long} over N={n_short},B={b_short}",
                long_ / short,
                "x",
                2.0,
                "<=",
                note=f"G6; {long_:.0f} vs {short:.0f} MiB",
            )
        ]


def main(device: str = "cpu") -> list[Result]:
    dev = resolve_device(device)
    torch.manual_seed(0)
    b = Bench(dev, GPU if dev.type == "cuda" else CPU)
    return run_parts("spe", dev, (b.overhead, b.autocast, b.kernels, b.memory_flat))


if __name__ == "__main__":
    main_cli(main, __doc__)
