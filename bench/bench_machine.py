"""The machine itself: memory bandwidth at two footprints and fp32 matmul throughput. No targets.

The ratios of `make bench` divide a memory-bound cost by a compute-bound one (sineSPE's contractions
read codes of 32 MiB per side; the Performer and the feed-forward layers are matmuls), so they move
when the machine does: on 2026-12-03 and 2026-12-04 the same code gave a 6-layer train step with
sineSPE 1.12-1.14x and 1.18-1.20x the step without, on VM hosts where the step without PE differed
by 1.8x and sineSPE's memory-bound overhead by 1.15x. These figures, measured in the same `make bench`,
say which host a file comes from.

- read bandwidth: `sum()` of a float32 tensor of 256 MiB (beyond the caches) and of 32 MiB (one
  side's shared code at the train step's size: N=256, H=8, D=64, R=64), read again and again;
- fp32 matmul: (B·N, d) @ (d, 4d) at the train step's feed-forward shape (512 x 512 @ 512 x 2048).
`python -m bench.bench_machine --device cpu|cuda` runs it alone.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch

from bench.common import MiB, Result, main_cli, resolve_device, run_parts, time_fn


@dataclass(frozen=True)
class Sizes:
    large_mib: int  # beyond the caches
    code_mib: int  # one side's shared code in the train-step benchmark
    matmul: tuple[int, int, int]  # (m, k, n)
    repeats: int
    warmup: int


CPU = Sizes(large_mib=256, code_mib=32, matmul=(512, 512, 2048), repeats=15, warmup=3)
GPU = Sizes(large_mib=4096, code_mib=32, matmul=(8192, 4096, 4096), repeats=20, warmup=5)


def read_bandwidth(device: torch.device, sizes: Sizes) -> list[Result]:
    out = []
    for mib, label in ((sizes.large_mib, "beyond the caches"), (sizes.code_mib, "one SPE code")):
        x = torch.ones(mib * MiB // 4, device=device)
        seconds = time_fn(x.sum, device, repeats=sizes.repeats, warmup=sizes.warmup)
        out.append(Result(f"read bandwidth, {mib} MiB ({label})", mib * MiB / seconds / 1e9, "GB/s"))
    return out


def matmul_throughput(device: torch.device, sizes: Sizes) -> list[Result]:
    m, k, n = sizes.matmul
    a, b = torch.randn(m, k, device=device), torch.randn(k, n, device=device)
    seconds = time_fn(lambda: a @ b, device, repeats=sizes.repeats, warmup=sizes.warmup)
    return [Result(f"fp32 matmul ({m}x{k} @ {k}x{n})", 2 * m * k * n / seconds / 1e9, "GFLOP/s")]


def main(device: str = "cpu") -> list[Result]:
    dev = resolve_device(device)
    sizes = GPU if dev.type == "cuda" else CPU
    return run_parts(
        "machine",
        dev,
        (functools.partial(read_bandwidth, dev, sizes), functools.partial(matmul_throughput, dev, sizes)),
    )


if __name__ == "__main__":
    main_cli(main, __doc__)
