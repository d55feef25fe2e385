"""Seeds of one configuration, aggregated: spelab.evaluate over a sweep dir reports mean ± std per
position bin (and of the within/beyond averages and the run's test NLL) over the runs that differ only
by their training seed, and draws the mean with a ± std band.

Runs are grouped by label (attention-pos_enc), training length and run dir without its seed (Hydra
names it seed<N>-<hash of the other overrides>, so two configurations never merge); the std is the
sample standard deviation (ddof=1) over seeds, 0 for a single seed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def _stats(values: list[float | None]) -> tuple[float | None, float | None]:
    vals = np.array([v for v in values if v is not None], dtype=float)
    if not vals.size:
        return None, None
    return float(vals.mean()), float(vals.std(ddof=1)) if vals.size > 1 else 0.0


def aggregate_seeds(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One entry per (label, train_length): the seeds, and mean/std of every bin and summary value."""
    groups: dict[tuple, list[dict]] = {}
    for run in runs:
        key = (run["label"], run["train_length"], run.get("config_id") or "")
        groups.setdefault(key, []).append(run)
    out = []
    for (label, train_length, _), members in sorted(groups.items()):
        members = sorted(members, key=lambda r: (r.get("seed") is None, r.get("seed")))
        bins = []
        for k, b in enumerate(members[0]["bins"]):
            mean, std = _stats([m["bins"][k]["nll"] if k < len(m["bins"]) else None for m in members])
            bins.append({"start": b["start"], "end": b["end"], "mean": mean, "std": std})
        entry: dict[str, Any] = {
            "label": label,
            "train_length": train_length,
            "n": len(members),
            "seeds": [m.get("seed") for m in members],
            "bins": bins,
            "task": members[0].get("task"),
            "eval_length": members[0].get("eval_length"),
        }
        for key in ("nll_within", "nll_beyond", "test_nll"):
            entry[f"{key}_mean"], entry[f"{key}_std"] = _stats([m.get(key) for m in members])
        gaps = [
            m["nll_beyond"] - m["nll_within"]
            for m in members
            if m.get("nll_beyond") is not None and m.get("nll_within") is not None
        ]
        entry["gap_mean"], entry["gap_std"] = _stats(gaps)
        out.append(entry)
    return out


def plot_aggregate(groups: list[dict[str, Any]], path: Path) -> Path:
    """Mean NLL per bin versus position with a ± std band and error bars, one line per configuration."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for g in groups:
        pts = [((b["start"] + b["end"]) / 2, b["mean"], b["std"]) for b in g["bins"] if b["mean"] is not None]
        xs, ys, es = (np.array(v) for v in zip(*pts))
        line = ax.errorbar(xs, ys, yerr=es, marker=".", capsize=2, linewidth=1.2, label=f"{g['label']} (n={g['n']})")
        ax.fill_between(xs, ys - es, ys + es, alpha=0.15, color=line[0].get_color())
    return save_nll_figure(fig, ax, groups, path, "NLL (nats/token), mean ± std over seeds")


def save_nll_figure(fig: Any, ax: Any, runs: list[dict[str, Any]], path: Path, ylabel: str) -> Path:
    """The frame every NLL-versus-position figure shares: a dashed line at each training length, axes,
    title and legend; saved to `path` and closed."""
    import matplotlib.pyplot as plt

    for length in sorted({r["train_length"] for r in runs}):
        ax.axvline(length, color="grey", linestyle="--", linewidth=1)
    ax.set_xlabel("position (tokens)")
    ax.set_ylabel(ylabel)
    ax.set_title(f"NLL vs position ({runs[0]['task']}, trained at {runs[0]['train_length']})")
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def table_markdown(groups: list[dict[str, Any]]) -> str:
    """A Markdown table of the aggregates (mean ± std over seeds)."""

    def fmt(g, key):
        m, s = g[f"{key}_mean"], g[f"{key}_std"]
        return "–" if m is None else f"{m:.4f} ± {s:.4f}"

    lines = [
        "| run | seeds | test/nll (training windows) | NLL within | NLL beyond | beyond − within |",
        "|---|---|---|---|---|---|",
    ]
    for g in groups:
        lines.append(
            f"| {g['label']} | {g['n']} | {fmt(g, 'test_nll')} | {fmt(g, 'nll_within')} | "
            f"{fmt(g, 'nll_beyond')} | {fmt(g, 'gap')} |"
        )
    return "\n".join(lines) + "\n"
