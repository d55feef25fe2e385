"""Render README's Benchmarks table from the committed result files (bench/results/*.json).

    python -m bench.render_figures           # rewrite the table in README.md
    python -m bench.render_figures --check   # exit 1 when README.md differs from the files

Each row names the file its figures come from; the sources below the table give each file's date and
the command that wrote it. A row with no file behind it says so. tests/test_readme_figures.py fails
when README.md and the files disagree, so a figure is changed by measuring again (`make bench`,
`make gpu-check`), then running this script, never by editing README.md.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
README = ROOT / "README.md"
BEGIN = "<!-- bench-table: rendered by `python -m bench.render_figures` from bench/results; do not edit -->"
END = "<!-- /bench-table -->"
# what wrote the files that predate `env.command` (bench/results/README.md)
KNOWN_COMMANDS = {
    "cpu": "make bench (python -m bench.run_all --device cpu)",
    "cuda": "python -m bench.gpu_check --only attention",
}
OPS = {">=": "≥", "<=": "≤"}


@dataclass
class Row:
    label: str
    file: str | None  # bench/results/<file>; None: no file behind the row
    names: list[str] = field(default_factory=list)  # result names, in the order `show` takes them
    show: Callable[[list[float]], str] | None = None
    target: str | Callable[[list[float]], str] | None = None  # None: the first figure's own target; a
    #                                      callable: today's target, judged on the values (files keep the old one)
    static: str = ""  # the value of a row without a file


def _x(v: float) -> str:
    return f"{v:.2f}×" if v < 10 else f"{v:.1f}×"


def _span(vals: list[float], unit: str = "") -> str:
    """'lo–hi' (or one value when they round alike), two decimals below 10, one above."""
    lo, hi = (f"{v:.2f}" if v < 10 else f"{v:.1f}" for v in (min(vals), max(vals)))
    return (f"{lo}–{hi}" if lo != hi else lo) + unit


def _cl(kind: str, n: int, b: int, h: int, d: int = 64) -> str:
    return f"causal linear {kind} [N={n},B={b},H={h},d={d},fp32]"


def _softmax(ns: list[tuple[int, int, int]], dtype: str) -> list[str]:
    return [
        f"softmax {c} {what} [N={n},B={b},H={h},{dtype}]"
        for n, b, h in ns
        for c in ("non-causal", "causal")
        for what in ("layer/bare SDPA time", "layer with all-False padding mask (reused, as across layers)/bare")
    ]


def at_most(limit: float) -> Callable[[list[float]], str]:
    """A target newer than the file's own: judged here on the file's first value."""
    return lambda v: f"≤ {limit:g}×" + ("" if v[0] <= limit else " (missed)")


def _modern(cell: str, causal: str, what: str = "time") -> str:
    return f"{cell} {causal}{what} over Performer (B=2, N=1024, H=4, D=32)"


def _slash(vals: list[float]) -> str:
    return " / ".join(_x(v) for v in vals)


H100_PRINTED = (
    "printed by `python -m bench.bench_spe --device cuda` on the H100, 2026-11-27; no file, "
    "not re-measured since the shared codes and the heads-first Performer"
)
GPU_N = [(1024, 16, 16), (4096, 4, 16), (16384, 1, 16)]

ROWS = [
    Row(
        "causal linear attention, naive prefix sum ÷ ours, time (H100, N=1k/4k/16k)",
        "attention_cuda.json",
        [_cl("time naive/ours", n, b, h) for n, b, h in GPU_N],
        lambda v: " / ".join(_x(x) for x in v),
    ),
    Row(
        "same, peak memory (H100, N=1k/4k/16k)",
        "attention_cuda.json",
        [_cl("peak memory naive/ours", n, b, h) for n, b, h in GPU_N],
        lambda v: " / ".join(_x(x) for x in v),
    ),
    Row(
        "same, time / saved bytes (CPU, N=128 and 1024)",
        "attention_cpu.json",
        [
            _cl("time naive/ours", 128, 8, 4),
            _cl("time naive/ours", 1024, 1, 4),
            _cl("saved bytes naive/ours", 128, 8, 4),
            _cl("saved bytes naive/ours", 1024, 1, 4),
        ],
        lambda v: f"{_span(v[:2], '×')} / {_span(v[2:], '×')}",
        "≥ 20× / ≥ 8×",
    ),
    Row(
        "causal linear memory per token, N=16k,B=1 ÷ N=1k,B=16 (H100)",
        "attention_cuda.json",
        ["causal LinearAttention peak memory per token, N=16384,B=1 over N=1024,B=16"],
        lambda v: f"{v[0]:.2f}",
    ),
    Row(
        "recurrent generation of 2048 tokens, recompute ÷ step (CPU)",
        "attention_cpu.json",
        ["recurrent generation speed-up recompute/step [2048 tokens,B=1,H=4,d=64]"],
        lambda v: _x(v[0]),
    ),
    Row(
        "softmax layer ÷ bare SDPA, with and without a padding mask (CPU fp32, N=512)",
        "attention_cpu.json",
        _softmax([(512, 2, 4)], "float32"),
        _span,
    ),
    Row(
        "softmax layer ÷ bare SDPA, with and without a padding mask (H100 bf16, N=1k–16k)",
        "attention_cuda.json",
        _softmax(GPU_N, "bfloat16"),
        _span,
    ),
    Row(
        "sineSPE + Performer ÷ Performer, fwd+bwd time (H100, N=16k, fp32 / bf16)",
        None,
        static="4.12× / 3.11×",
        target="≤ 1.5× (missed)",
    ),
    Row("same, peak memory (H100, fp32)", None, static="1.05×", target="≤ 1.25×"),
    Row("convSPE + Performer ÷ Performer, time (H100, N=16k)", None, static="7.87×", target="≤ 2× (missed)"),
    Row(
        "sineSPE + Performer ÷ Performer, time (CPU, N=1024, B=4)",
        "spe_cpu.json",
        [
            "sineSPE time ratio over Performer (N=1024, B=4)",
            "Performer+sineSPE fwd+bwd (N=1024, B=4)",
            "Performer fwd+bwd (N=1024, B=4)",
        ],
        lambda v: f"{_x(v[0])} ({v[1]:.0f} ÷ {v[2]:.0f} ms)",
        at_most(2.0),
    ),
    Row(
        "convSPE + Performer ÷ Performer, time (CPU, N=1024, B=4)",
        "spe_cpu.json",
        ["convSPE time ratio over Performer (N=1024, B=4)"],
        lambda v: _x(v[0]),
    ),
    Row(
        "training step of a 6×512 Performer, sineSPE ÷ no PE (CPU, B=2, N=256)",
        "train_step_cpu.json",
        ["train step, 6x512 Performer: sineSPE / no PE"],
        lambda v: _x(v[0]),
        at_most(1.15),
    ),
    Row(
        "same, convSPE ÷ no PE (CPU)",
        "train_step_cpu.json",
        ["train step, 6x512 Performer: convSPE / no PE"],
        lambda v: _x(v[0]),
    ),
    Row(
        "performer-pytorch ÷ ours, Performer fwd+bwd, non-causal / causal (CPU, N=1024)",
        "attention_cpu.json",
        [
            "Performer non-causal time performer-pytorch/ours [N=1024,B=1,H=4]",
            "Performer causal time performer-pytorch/ours [N=1024,B=1,H=4]",
        ],
        lambda v: f"{_x(v[0])} / {_x(v[1])}",
    ),
    Row(
        "training step, Lightning ÷ plain PyTorch loop (CPU)",
        "train_step_cpu.json",
        ["train step: Lightning / plain loop"],
        lambda v: _x(v[0]),
    ),
    Row(
        "GLA ÷ Performer, fwd+bwd time, bidirectional / causal (CPU, B=2, N=1024, H=4, D=32)",
        "modern_cpu.json",
        [_modern("gla+none", ""), _modern("gla+none", "causal ")],
        _slash,
    ),
    Row(
        "DeltaNet ÷ Performer, same, bidirectional / causal",
        "modern_cpu.json",
        [_modern("deltanet+none", ""), _modern("deltanet+none", "causal ")],
        _slash,
    ),
    Row(
        "softmax + alibi / kerple / fire / decay ÷ Performer, time (CPU, dense bias)",
        "modern_cpu.json",
        [_modern(f"softmax+{s}", "") for s in ("alibi", "kerple", "fire", "decay")],
        _slash,
    ),
    Row(
        "Performer + decay / linear + decay ÷ Performer, time",
        "modern_cpu.json",
        [_modern("performer+decay", ""), _modern("linear+decay", "")],
        _slash,
    ),
    Row(
        "saved memory ÷ Performer: GLA bidir. / DeltaNet bidir. / softmax+alibi / Performer+decay",
        "modern_cpu.json",
        [_modern(c, "", "saved memory") for c in ("gla+none", "deltanet+none", "softmax+alibi", "performer+decay")],
        _slash,
    ),
]


def _load(file: str) -> dict:
    return json.loads((RESULTS / file).read_text())


def _figures(payload: dict, file: str, names: list[str]) -> list[dict]:
    by_name = {r["name"]: r for r in payload["results"]}
    missing = [n for n in names if n not in by_name]
    if missing:
        raise KeyError(f"bench/results/{file} has no figure {missing[0]!r}: update ROWS in bench/render_figures.py")
    return [by_name[n] for n in names]


def _target(fig: dict) -> str:
    if fig.get("target") is None:
        return "–"
    t = fig["target"]
    return f"{OPS[fig['op']]} {t:g}{'×' if fig.get('unit') == 'x' else ''}" + ("" if fig.get("passed") else " (missed)")


def _summary_disagrees(file: str, figs: list[dict]) -> list[str]:
    """Figures that the same device's summary (the whole `make bench` run) records differently."""
    name, dev = file[: -len(".json")].rsplit("_", 1)
    path = RESULTS / f"summary_{dev}.json"
    if not path.exists():
        return []
    summary = json.loads(path.read_text())
    module = next((m for m in summary.get("modules", []) if m["name"] == name), None)
    if module is None:
        return []
    theirs = {r["name"]: r["value"] for r in module["results"]}
    return [
        f"{f['name']}: {theirs[f['name']]:.3g}"
        for f in figs
        if f["name"] in theirs
        and theirs[f["name"]] is not None
        and f["value"] is not None
        and abs(theirs[f["name"]] - f["value"]) > 1e-9 * max(1.0, abs(f["value"]))
    ]


def _source(file: str, payload: dict, disagree: list[str]) -> str:
    env = payload.get("env", {})
    dev = env.get("device", "cpu").split(":")[0]
    machine = env.get("gpu") or f"{env.get('num_threads')}-thread CPU"
    cmd = env.get("command")
    if cmd:
        how = f"`{cmd}`"
    elif disagree:
        how = (
            f"command not recorded; not the `make bench` run of `summary_{dev}.json` "
            f"({json.loads((RESULTS / f'summary_{dev}.json').read_text())['env']['time_utc']}), "
            f"which has {'; '.join(disagree)}: a later run of this benchmark alone"
        )
    else:
        how = f"`{KNOWN_COMMANDS[dev]}` (command not recorded in the file; per bench/results/README.md)"
    return f"- `bench/results/{file}`: {env.get('time_utc', 'date not recorded')}, {machine}, torch {env.get('torch')}; {how}"


def render() -> str:
    lines = ["| figure | measured | target | from |", "|---|---|---|---|"]
    sources: dict[str, list[str]] = {}
    payloads: dict[str, dict] = {}
    for row in ROWS:
        if row.file is None:
            lines.append(f"| {row.label} | {row.static} | {row.target} | no file: not re-measured\\* |")
            continue
        payload = payloads.setdefault(row.file, _load(row.file))
        figs = _figures(payload, row.file, row.names)
        value = row.show([f["value"] for f in figs])
        vals = [f["value"] for f in figs]
        target = row.target(vals) if callable(row.target) else row.target or _target(figs[0])
        lines.append(f"| {row.label} | {value} | {target} | `{row.file}` |")
        sources.setdefault(row.file, []).extend(_summary_disagrees(row.file, figs))
    lines += ["", f"\\* {H100_PRINTED}.", "", "Sources (date UTC, machine, the command that wrote the file):"]
    lines += [_source(f, payloads[f], d) for f, d in sources.items()]
    return "\n".join([BEGIN, *lines, END])


def replace_block(text: str, block: str) -> str:
    pattern = re.compile(re.escape(BEGIN) + r".*?" + re.escape(END), re.S)
    if not pattern.search(text):
        raise ValueError(f"README.md has no rendered table ({BEGIN} ... {END})")
    return pattern.sub(lambda _: block, text, count=1)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="exit 1 when README.md differs from the files")
    args = ap.parse_args(argv)
    text = README.read_text()
    new = replace_block(text, render())
    if args.check:
        if new != text:
            print("README.md's Benchmarks table differs from bench/results: run `python -m bench.render_figures`")
            return 1
        return 0
    README.write_text(new)
    print(f"rendered {len(ROWS)} rows into {README}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
