"""Shared benchmark harness: timing, memory, result records with targets, JSON + markdown output.

Every benchmark module `bench/bench_<name>.py` exposes `main(device: str) -> list[Result]` and
usually calls `write_results("<name>", device, results)` itself; `python -m bench.run_all --device
cpu|cuda` runs them all (writing a module's files when it did not) plus a summary in `bench/results/`.
Ratios are always measured inside one process (same machine, same load), medians after warm-up.
"""

from __future__ import annotations

import json
import math
import os
import platform
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

import torch

RESULTS_DIR = Path(__file__).resolve().parent / "results"
MiB = 2**20


@dataclass
class Result:
    """One measured figure, with the target it is compared to.

    `op` is ">=" or "<=": passed = value op target. A Result without target is informational.
    """

    name: str
    value: float
    unit: str = ""
    target: float | None = None
    op: str = ">="
    note: str = ""
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.op not in (">=", "<="):
            raise ValueError(f"Result.op must be '>=' or '<=', got {self.op!r}")

    @property
    def passed(self) -> bool | None:
        if self.target is None or self.value is None or math.isnan(self.value):
            return None
        return self.value >= self.target if self.op == ">=" else self.value <= self.target

    def to_dict(self) -> dict:
        d = asdict(self)
        if isinstance(self.value, float) and math.isnan(self.value):
            d["value"] = None  # strict JSON has no NaN
        d["passed"] = self.passed
        return d

    def line(self) -> str:
        """'name: value unit  (target op X: PASS)', the figure with its target beside it."""
        val = _fmt(self.value)
        tgt = (
            ""
            if self.target is None
            else f"  (target {self.op} {_fmt(self.target)}: {'PASS' if self.passed else 'FAIL'})"
        )
        note = f"  [{self.note}]" if self.note else ""
        return f"{self.name}: {val}{(' ' + self.unit) if self.unit else ''}{tgt}{note}"


def _fmt(x: float | None) -> str:
    if x is None:
        return "n/a"
    if isinstance(x, float) and (math.isnan(x) or math.isinf(x)):
        return str(x)
    ax = abs(x)
    if ax != 0 and (ax >= 1e5 or ax < 1e-3):
        return f"{x:.3e}"
    return f"{x:.3f}" if ax < 100 else f"{x:.1f}"


def skipped(name: str, reason: str) -> Result:
    """A Result for a comparison that could not run (e.g. a peer library is not installed)."""
    return Result(name=name, value=float("nan"), note=f"skipped: {reason}")


# ----------------------------------------------------------------------------- devices


def resolve_device(device: str | torch.device) -> torch.device:
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={str(device)!r} requested but CUDA is not available; use device='cpu'")
    if dev.type not in ("cpu", "cuda"):
        raise ValueError(f"device must be 'cpu' or 'cuda', got {str(device)!r}")
    return dev


def synchronize(device: str | torch.device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


# ----------------------------------------------------------------------------- timing


def time_fn(
    fn: Callable[[], object],
    device: str | torch.device = "cpu",
    repeats: int = 10,
    warmup: int = 2,
    max_seconds: float | None = None,
) -> float:
    """Median wall time of `fn()` in seconds, after `warmup` untimed calls.

    On CUDA each call is timed with CUDA events (device time, synchronised). `max_seconds` stops
    repeating early (at least 3 timed calls) so slow baselines keep CPU benchmarks short.
    """
    dev = torch.device(device)
    for _ in range(warmup):
        fn()
    synchronize(dev)
    times: list[float] = []
    start_all = time.perf_counter()
    for i in range(repeats):
        if dev.type == "cuda":
            s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            s.record()
            fn()
            e.record()
            torch.cuda.synchronize()
            times.append(s.elapsed_time(e) / 1e3)
        else:
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        if max_seconds is not None and i >= 2 and time.perf_counter() - start_all > max_seconds:
            break
    return statistics.median(times)


def fwd_bwd(fn: Callable[..., torch.Tensor], *inputs: torch.Tensor) -> Callable[[], None]:
    """A closure running forward and backward of `fn(*inputs)` with `torch.autograd.grad`.

    grad() (not .backward()) so gradients do not accumulate in `.grad` and add memory between calls.
    """
    leaves = [x for x in inputs if isinstance(x, torch.Tensor) and x.requires_grad]

    def run() -> None:
        out = fn(*inputs)
        torch.autograd.grad(out, leaves, torch.ones_like(out))

    return run


# ----------------------------------------------------------------------------- memory


def saved_bytes(fn: Callable[[], object]) -> int:
    """Bytes of the tensors autograd saves for backward while running `fn()` (forward only).

    Device-independent proxy for activation memory (used on CPU). Tensors sharing a storage are
    counted once (by storage pointer), so views of one buffer do not inflate the count.
    """
    seen: dict[tuple, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        try:
            st = t.untyped_storage()
            key = (t.device.type, st.data_ptr())
            seen[key] = max(seen.get(key, 0), st.nbytes())
        except (RuntimeError, NotImplementedError):  # e.g. tensors without storage
            seen[("id", id(t))] = t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = fn()
    del out
    return sum(seen.values())


def peak_cuda_mem(fn: Callable[[], object], device: str | torch.device = "cuda") -> int:
    """Peak CUDA memory allocated during `fn()`, above what was allocated before the call (bytes)."""
    dev = torch.device(device)
    torch.cuda.synchronize(dev)
    torch.cuda.empty_cache()
    base = torch.cuda.memory_allocated(dev)
    torch.cuda.reset_peak_memory_stats(dev)
    fn()
    torch.cuda.synchronize(dev)
    return torch.cuda.max_memory_allocated(dev) - base


# ----------------------------------------------------------------------------- output


def _cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo; the platform's processor string elsewhere): VM hosts of one
    name can differ, so bench_machine's bandwidth and matmul figures are the finer record."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.split(":", 1)[0].strip() in ("model name", "Model"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def env_info(device: str | torch.device) -> dict:
    dev = torch.device(device)
    info = {
        "torch": torch.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "processor": platform.processor() or platform.machine(),
        "cpu": _cpu_model(),
        "num_threads": torch.get_num_threads(),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
        # `make bench` keeps freed memory in glibc (Makefile): without it, whether a 32 MiB tensor is
        # page-faulted afresh depends on glibc's adaptive mmap threshold, and CPU times swing by 1.5x
        "GLIBC_TUNABLES": os.environ.get("GLIBC_TUNABLES"),
        "device": str(dev),
        "time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        # what wrote the file, so that a figure quoted from it says how to measure it again
        "command": " ".join(["python", *getattr(sys, "orig_argv", sys.argv)[1:]]),
    }
    if dev.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(dev)
        info["cuda"] = torch.version.cuda
    return info


def markdown_table(results: Sequence[Result]) -> str:
    rows = ["| figure | value | target | status | note |", "|---|---|---|---|---|"]
    for r in results:
        tgt = "" if r.target is None else f"{r.op} {_fmt(r.target)}"
        status = {True: "PASS", False: "FAIL", None: "-"}[r.passed]
        val = _fmt(r.value) + (f" {r.unit}" if r.unit else "")
        rows.append(f"| {r.name} | {val} | {tgt} | {status} | {r.note} |")
    return "\n".join(rows)


def write_results(
    name: str,
    device: str | torch.device,
    results: Iterable[Result],
    meta: dict | None = None,
    out_dir: str | Path | None = None,
) -> tuple[Path, Path]:
    """Write `<out_dir>/<name>_<device>.json` and `.md` (default out_dir: bench/results/)."""
    results = list(results)
    dev = torch.device(device).type
    out = Path(out_dir) if out_dir is not None else RESULTS_DIR
    out.mkdir(parents=True, exist_ok=True)
    payload = {
        "benchmark": name,
        "env": env_info(device),
        "meta": meta or {},
        "results": [r.to_dict() for r in results],
    }
    jpath, mpath = out / f"{name}_{dev}.json", out / f"{name}_{dev}.md"
    jpath.write_text(json.dumps(payload, indent=2, default=_json_default) + "\n")
    env = payload["env"]
    head = f"# {name} ({dev})\n\n{env['time_utc']}, torch {env['torch']}, {env.get('gpu', env['processor'])}, threads={env['num_threads']}\n\n"
    mpath.write_text(head + markdown_table(results) + "\n")
    return jpath, mpath


def _json_default(o: object) -> object:
    if isinstance(o, float) and math.isnan(o):
        return None
    return str(o)


def print_results(results: Iterable[Result], title: str | None = None) -> None:
    if title:
        print(f"== {title}")
    for r in results:
        print("  " + r.line(), flush=True)


# ----------------------------------------------------------------------------- running


def run_parts(name: str, device: torch.device, parts: Sequence[Callable[[], list[Result]]]) -> list[Result]:
    """Run a benchmark's parts in order, print each with its targets, write `<name>_<device>.*`."""
    results: list[Result] = []
    for part in parts:
        rs = part()
        label = getattr(part, "__name__", None) or getattr(part, "func").__name__  # functools.partial
        print_results(rs, title=f"{name}.{label} ({device.type})")
        results += rs
        if device.type == "cuda":
            torch.cuda.empty_cache()  # each part measures its own peak
    write_results(name, device, results)
    return results


def main_cli(main: Callable[[str], object], doc: str | None) -> None:
    """`python -m bench.bench_<name> --device cpu|cuda`."""
    import argparse

    ap = argparse.ArgumentParser(description=(doc or "").splitlines()[0] if doc else None)
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    main(ap.parse_args().device)
