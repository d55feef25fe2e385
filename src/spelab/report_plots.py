"""PNG plots for spelab.report: one grouped bar chart per task, NLL-versus-position curves for music."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display needed (tests, SLURM nodes)
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from spelab.report_common import load_curve, lower_is_better, ordered  # noqa: E402


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in str(name))


def bar_chart(tab: pd.DataFrame, title: str) -> plt.Figure:
    """Bars of mean ± std: groups = pos_enc, one bar per attention; failed-only cells are marked."""
    atts = ordered(tab["attention"], "attention")
    poss = ordered(tab["pos_enc"], "pos_enc")
    cells = {(r.attention, r.pos_enc): r for r in tab.itertuples()}
    x = np.arange(len(poss))
    width = 0.8 / max(len(atts), 1)
    fig, ax = plt.subplots(figsize=(max(5.0, 1.3 * len(poss) + 1.5), 3.6))
    for i, att in enumerate(atts):
        means = [cells[(att, p)].mean if (att, p) in cells else np.nan for p in poss]
        stds = [cells[(att, p)].std if (att, p) in cells else np.nan for p in poss]
        stds = [0.0 if np.isnan(s) else s for s in stds]
        pos = x - 0.4 + width * (i + 0.5)
        ax.bar(pos, means, width, yerr=stds, capsize=2, label=str(att))
        for xp, p in zip(pos, poss):
            r = cells.get((att, p))
            if r is not None and r.n_failed:
                ax.annotate(f"{r.n_failed}✗", (xp, 0), ha="center", va="bottom", fontsize=7, color="red")
    ax.set_xticks(x, [str(p) for p in poss])
    ax.set_xlabel("positional encoding")
    metric = tab["metric"].dropna().iloc[0] if tab["metric"].notna().any() else "metric"
    ax.set_ylabel(f"{metric} ({'lower' if lower_is_better(metric) else 'higher'} is better)")
    ax.set_title(title, fontsize=10)
    ax.legend(title="attention", fontsize=8)
    fig.tight_layout()
    return fig


def nll_curves(curves: dict[tuple[str, str], list[dict]], title: str) -> plt.Figure:
    """One line per (attention, pos_enc): the NLL per position averaged over seeds (on the positions
    all seeds share), with a band of ± one std where there are several seeds."""
    fig, ax = plt.subplots(figsize=(6.0, 3.6))
    for (att, pos), cs in sorted(curves.items(), key=lambda kv: (str(kv[0][0]), str(kv[0][1]))):
        n = min(len(c["positions"]) for c in cs)
        xs = np.asarray(cs[0]["positions"][:n])
        ys = np.stack([np.asarray(c["nll"][:n]) for c in cs])
        mean = ys.mean(0)
        (line,) = ax.plot(xs, mean, label=f"{att}-{pos}")
        if len(cs) > 1:
            std = ys.std(0, ddof=1)
            ax.fill_between(xs, mean - std, mean + std, color=line.get_color(), alpha=0.2)
    ax.set_xlabel("position")
    ax.set_ylabel("NLL")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def write_plots(runs: pd.DataFrame, summary: pd.DataFrame, out: Path) -> list[Path]:
    """bars_<task>.png per (sweep, task), nll_vs_position_<task>.png where curves exist."""
    files = []
    several = summary["sweep"].nunique() > 1
    for (sweep, task), tab in summary.groupby(["sweep", "task"], sort=False):
        stem = f"{_safe(sweep)}_{_safe(task)}" if several else _safe(task)
        sub = " (substitute data)" if tab["substitute"].any() else ""
        fig = bar_chart(tab, f"{task}{sub}" + (f" — {sweep}" if several else ""))
        path = out / f"bars_{stem}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        files.append(path)
        curves: dict[tuple[str, str], list[dict]] = {}
        trows = runs[(runs["sweep"] == sweep) & (runs["task"] == task) & (runs["status"] == "done")]
        for r in trows.itertuples():
            c = load_curve(r.run_dir)
            if c is not None:
                curves.setdefault((r.attention, r.pos_enc), []).append(c)
        if curves:
            fig = nll_curves(curves, f"{task}{sub}: NLL versus position")
            path = out / f"nll_vs_position_{stem}.png"
            fig.savefig(path, dpi=110)
            plt.close(fig)
            files.append(path)
    return files
