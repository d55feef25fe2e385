"""The working tree against an earlier git revision, in one process: old and new SPE side by side.

On a shared 2-core VM a single `make bench` run drifts by 10-40% from one sitting to the next, more
than most code changes move a figure. This script imports the package of `--rev` as `spelab_old`
(extracted with `git archive`, its imports renamed) beside the working tree's `spelab`, and times
both on the same inputs in a shuffled order per repetition, so drift hits both alike:

- `sine_op` / `conv_op`: sineSPE / convSPE alone, fwd+bwd (B=4, N=1024, H=8, D=64, R=64, K=10, P=128),
  with the Performer (256 features) timed in the same loop for the ratio 1 + SPE/Performer;
- `sine_step` / `conv_step`: a training step of the 6x512 Performer model of bench_train_step
  (B=2, N=256) with the scheme, old and new, over the same model without positional encoding.

`python -m bench.ab_revision --rev HEAD~3 --case sine_op` (run it under `make bench`'s GLIBC_TUNABLES
to match those figures). It prints medians and ratios; nothing is written.
"""

from __future__ import annotations

import argparse
import functools
import importlib
import random
import re
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from io import BytesIO
from pathlib import Path

import torch

from bench import bench_spe, bench_train_step

ROOT = Path(__file__).resolve().parents[1]
# the sizes of the benchmarks these cases mirror (bench_spe's CPU op, bench_train_step's CPU step)
H, D, R = bench_spe.HEADS, bench_spe.DIM, bench_spe.REALIZATIONS
OP_SIZE = (bench_spe.CPU.batch, bench_spe.CPU.length)  # (B, N) of the op cases
STEP_SIZE = (
    bench_train_step.SIZES["cpu"]["batch"],
    bench_train_step.SIZES["cpu"]["length"],
    512,
    6,
)  # + d_model, layers


def import_revision(rev: str, into: Path):
    """`spelab` as of `rev`, importable as `spelab_old` (a copy under `into`)."""
    archive = subprocess.run(["git", "archive", rev, "src/spelab"], cwd=ROOT, check=True, capture_output=True).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    package = into / "spelab_old"
    (into / "src" / "spelab").rename(package)
    for path in package.rglob("*.py"):
        text = path.read_text()
        text = re.sub(r"\bspelab\.", "spelab_old.", text)
        text = re.sub(r"\bfrom spelab import\b", "from spelab_old import", text)
        path.write_text(text)
    sys.path.insert(0, str(into))
    return importlib.import_module("spelab_old")


def op_cases(scheme: str) -> dict:
    from spelab.nn.attention import PerformerAttention

    g = torch.Generator().manual_seed(0)
    batch, n = OP_SIZE
    q, k, v = (torch.randn(batch, n, H, D, generator=g).requires_grad_() for _ in range(3))
    grads = [torch.randn(batch, n, H, R, generator=g) for _ in range(2)]
    attention = PerformerAttention(key_dim=D, num_features=256).train()

    def performer():
        out = attention(q, k, v)
        torch.autograd.grad(out, [q, k, v], torch.ones_like(out))

    cases = {"performer": performer}
    for package in ("spelab_old", "spelab"):
        positional = importlib.import_module(package + ".nn.positional")
        torch.manual_seed(0)
        if scheme == "sine":
            spe = positional.SineSPE(H, D, R, num_sines=10, gated=True)
        else:
            spe = positional.ConvSPE(H, D, R, kernel_size=128, gated=True)
        leaves = [q, k, *spe.parameters()]

        def run(spe=spe, leaves=leaves):
            torch.autograd.grad(spe(q, k), leaves, grads)

        cases[package] = run
    return cases


def step_cases(scheme: str) -> dict:
    g = torch.Generator().manual_seed(0)
    batch, n, width, layers = STEP_SIZE
    batches = [
        (torch.randint(1, 256, (batch, n), generator=g), torch.randint(0, 10, (batch,), generator=g)) for _ in range(6)
    ]
    cls = "SineSPE" if scheme == "sine" else "ConvSPE"
    extra = {"num_sines": 10} if scheme == "sine" else {"kernel_size": 128}

    def model(package: str, with_spe: bool):
        nn = importlib.import_module(package + ".nn")
        pos = functools.partial(getattr(nn, cls), num_realizations=R, gated=True, **extra) if with_spe else None
        torch.manual_seed(0)
        encoder = nn.Transformer(
            vocab_size=256,
            d_model=width,
            num_layers=layers,
            num_heads=H,
            ff_dim=4 * width,
            dropout=0.1,
            max_len=n,
            attention=functools.partial(nn.PerformerAttention, num_features=256),
            pos_enc=pos,
        )
        return torch.nn.Sequential(encoder, nn.ClassificationHead(width, 10))

    cases = {}
    for name, package, with_spe in (
        ("none", "spelab", False),
        ("spelab_old", "spelab_old", True),
        ("spelab", "spelab", True),
    ):
        net = model(package, with_spe)
        opt = torch.optim.AdamW(net.parameters(), lr=1e-4)
        counter = iter(range(10**9))

        def step(net=net, opt=opt, counter=counter):
            ids, y = batches[next(counter) % len(batches)]
            torch.nn.functional.cross_entropy(net(ids), y).backward()
            opt.step()
            opt.zero_grad(set_to_none=True)

        cases[name] = step
    return cases


def measure(cases: dict, repetitions: int) -> dict[str, float]:
    for fn in cases.values():  # warm-up
        fn()
        fn()
    times = {name: [] for name in cases}
    rng = random.Random(0)
    for _ in range(repetitions):
        order = list(cases.items())
        rng.shuffle(order)
        for name, fn in order:
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(t) * 1e3 for name, t in times.items()}


def compare(rev: str, case: str, repetitions: int | None = None) -> dict[str, float]:
    """Median ms of each variant of `case` (old: "spelab_old", new: "spelab", and the baseline)."""
    scheme, kind = case.split("_")
    with tempfile.TemporaryDirectory() as tmp:
        import_revision(rev, Path(tmp))
        try:
            cases = op_cases(scheme) if kind == "op" else step_cases(scheme)
            return measure(cases, repetitions or (9 if kind == "op" else 24))
        finally:
            sys.path.remove(tmp)
            for name in [m for m in sys.modules if m == "spelab_old" or m.startswith("spelab_old.")]:
                del sys.modules[name]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rev", required=True, help="git revision to compare the working tree against")
    parser.add_argument("--case", choices=["sine_op", "conv_op", "sine_step", "conv_step"], required=True)
    parser.add_argument("--repetitions", type=int, default=None)
    args = parser.parse_args()
    torch.set_num_threads(2)
    med = compare(args.rev, args.case, args.repetitions)
    kind = args.case.split("_")[1]
    base = med["performer"] if kind == "op" else med["none"]
    ratio = (lambda v: 1 + v / base) if kind == "op" else (lambda v: v / base)
    label = "1 + SPE/Performer" if kind == "op" else "step / step without PE"
    print(f"{args.case}: medians in ms " + ", ".join(f"{n} {v:.1f}" for n, v in med.items()))
    print(
        f"  new/old {med['spelab'] / med['spelab_old']:.3f}; {label}: "
        f"old ({args.rev}) {ratio(med['spelab_old']):.3f}, new {ratio(med['spelab']):.3f}"
    )


if __name__ == "__main__":
    main()
