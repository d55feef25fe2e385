"""Sweep directories -> comparison tables and plots.

    python -m spelab.report SWEEP_DIR [SWEEP_DIR ...] [--out DIR] [--metric test/acc] [--no-plots]

Reads every ``results.json`` under the given directories (the contract in docs/architecture.md,
"results.json"; never logger internals) and writes, into ``--out`` (default: the first SWEEP_DIR):

- ``runs.csv``: one row per run (status, seed, metrics, error);
- ``summary.csv``: one row per cell (sweep, task, attention, pos_enc): mean and sample standard
  deviation (ddof=1) over the seeds that finished, run counts and failures (``n_other``: run dirs
  without a results.json yet -- queued, running, killed or preempted);
- ``summary.md``: per task, a table attention x pos_enc of ``mean ± std (n)``, the failures with their
  errors, and which tasks ran on substitute data; it is also printed;
- ``bars_<task>.png`` (one grouped bar chart per task) and ``nll_vs_position_<task>.png`` for runs
  whose directory holds an ``nll_vs_position.json`` (``{"positions": [...], "nll": [...]}``).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import pandas as pd

from spelab.report_common import CURVE_FILE, load_curve, lower_is_better, ordered  # noqa: F401 (public here too)

log = logging.getLogger(__name__)

RESULTS_FILE = "results.json"
# The test metric of a task, first match wins: accuracy for classification, NLL for language models.
METRIC_PRIORITY = ("test/acc", "test/nll", "test/loss")
# What a results.json of spelab always holds (docs/architecture.md), and why one is listed as unusable.
CONTRACT_KEYS = ("status", "task", "attention", "pos_enc", "seed", "metrics")
KNOWN_STATUSES = ("done", "failed", "interrupted", "unsupported")
UNUSABLE = (
    "unreadable results.json (truncated or corrupt)",
    "foreign results.json (not written by spelab)",
    "partial results.json",
)


# ----------------------------------------------------------------------------------------- loading
def _sweep_label(sweep_dir: Path, taken: dict[str, Path]) -> str:
    """The sweep's name in tables: its directory name (parent/name if two sweeps share a name)."""
    label = sweep_dir.name or str(sweep_dir)
    if label in taken and taken[label] != sweep_dir:
        label = f"{sweep_dir.parent.name}/{sweep_dir.name}"
    taken[label] = sweep_dir
    return label


def _cell_from_path(run_dir: Path) -> dict[str, Any]:
    """task/attention/pos_enc/seed from the deterministic layout <task>/<attention>-<pos_enc>/seed<N>[-hash]
    (for a results.json that cannot be read); None where the path does not follow it."""
    att, _, pos = run_dir.parent.name.partition("-")
    seed_txt = run_dir.name.removeprefix("seed").split("-")[0]
    ok = run_dir.name.startswith("seed") and seed_txt.isdigit() and bool(pos)
    return {
        "task": run_dir.parent.parent.name if ok else None,
        "attention": att if ok else None,
        "pos_enc": pos if ok else None,
        "seed": int(seed_txt) if ok else None,
    }


def _run_row(path: Path, sweep: str) -> dict[str, Any]:
    """One results.json -> a flat row. A file that is unreadable (truncated, corrupt), foreign (not
    spelab's) or partial (keys missing) becomes a failed run whose error says which (UNUSABLE)."""
    run_dir = path.parent
    res, problem = read_results_file(path)
    if problem is not None:
        status = "foreign" if problem.startswith(UNUSABLE[1]) else "failed"  # not a spelab run at all
        return {
            "sweep": sweep,
            "run_dir": str(run_dir),
            "status": status,
            "error": problem,
            **_cell_from_path(run_dir),
            "substitute": False,
            "description": "",
        }
    data = res.get("data") if isinstance(res.get("data"), dict) else {}
    metrics = res.get("metrics") if isinstance(res.get("metrics"), dict) else {}
    row: dict[str, Any] = {
        "sweep": sweep,
        "run_dir": str(run_dir),
        "status": str(res.get("status", "unknown")),
        "task": res.get("task"),
        "attention": res.get("attention"),
        "pos_enc": res.get("pos_enc"),
        "seed": res.get("seed"),
        "params": res.get("params"),
        "wall_time_s": res.get("wall_time_s"),
        "error": res.get("error"),
        "substitute": bool(data.get("substitute", res.get("substitute", False))),
        "description": str(data.get("description", res.get("description", "")) or ""),
    }
    for key, value in metrics.items():
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            row[key] = float(value)
    return row


def read_results_file(path: Path) -> tuple[dict | None, str | None]:
    """(results, None), or (None, why it cannot be used: starts with one of UNUSABLE)."""
    try:
        res = json.loads(path.read_bytes().decode("utf-8"))
    except (OSError, ValueError) as err:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        return None, f"{UNUSABLE[0]}: {type(err).__name__}: {err}"
    if not isinstance(res, dict) or "status" not in res or "metrics" not in res:
        what = (
            f"a JSON {type(res).__name__}"
            if not isinstance(res, dict)
            else f"a JSON object without 'status'/'metrics' (keys: {', '.join(sorted(map(str, res))[:8])})"
        )
        return None, f"{UNUSABLE[1]}: {what}"
    missing = [k for k in CONTRACT_KEYS if k not in res]
    if missing or not isinstance(res["metrics"], dict) or res["status"] not in KNOWN_STATUSES:
        why = (
            f"missing {', '.join(missing)}"
            if missing
            else f"status {res['status']!r}"
            if res["status"] not in KNOWN_STATUSES
            else "metrics is not an object"
        )
        return None, f"{UNUSABLE[2]}: {why}"
    return res, None


def load_runs(sweep_dirs: Iterable[str | Path]) -> pd.DataFrame:
    """Every results.json under the given directories, one row per run (metrics as columns)."""
    rows, taken = [], {}
    for d in sweep_dirs:
        sweep_dir = Path(d).resolve()
        if not sweep_dir.is_dir():
            raise FileNotFoundError(f"sweep dir {str(d)!r} does not exist (pass a dir holding run dirs)")
        label = _sweep_label(sweep_dir, taken)
        for path in sorted(sweep_dir.rglob(RESULTS_FILE)):
            if ".submitit" in path.parts:
                continue
            rows.append(_run_row(path, label))
        # run dirs Hydra created that have no results.json yet: queued, running, killed or preempted
        for hydra_dir in sorted(sweep_dir.rglob(".hydra")):
            run_dir = hydra_dir.parent
            if not (run_dir / RESULTS_FILE).exists() and ".submitit" not in run_dir.parts:
                cell = _cell_from_path(run_dir)
                if cell["task"] is not None:
                    rows.append(
                        {
                            "sweep": label,
                            "run_dir": str(run_dir),
                            "status": "unfinished",
                            "error": None,
                            "substitute": False,
                            "description": "",
                            **cell,
                        }
                    )
    cols = [
        "sweep",
        "task",
        "attention",
        "pos_enc",
        "seed",
        "status",
        "error",
        "substitute",
        "description",
        "params",
        "wall_time_s",
        "run_dir",
    ]
    df = pd.DataFrame(rows)
    for c in cols:
        if c not in df.columns:
            df[c] = None
    metric_cols = sorted(c for c in df.columns if c not in cols)
    return df[cols + metric_cols]


# ------------------------------------------------------------------------------------- summarising
def task_metric(runs: pd.DataFrame, task: str, metric: str | None = None) -> str | None:
    """The metric a task is compared on: `metric` if given, else the first of METRIC_PRIORITY that
    a finished run of the task reports."""
    if metric is not None:
        return metric
    done = runs[(runs["task"] == task) & (runs["status"] == "done")]
    for key in METRIC_PRIORITY:
        if key in done.columns and done[key].notna().any():
            return key
    return None


def summarize(runs: pd.DataFrame, metric: str | None = None) -> pd.DataFrame:
    """One row per (sweep, task, attention, pos_enc): mean and sample std (ddof=1) of the task's test
    metric over finished runs, and counts (runs, done, failed, other)."""
    rows = []
    if runs.empty:
        return pd.DataFrame(
            columns=[
                "sweep",
                "task",
                "attention",
                "pos_enc",
                "metric",
                "mean",
                "std",
                "n_runs",
                "n_done",
                "n_failed",
                "n_other",
                "n_unsupported",
                "seeds",
                "substitute",
            ]
        )
    keyed = runs.dropna(subset=["task"])
    for (sweep, task, att, pos), grp in keyed.groupby(
        ["sweep", "task", "attention", "pos_enc"], dropna=False, sort=False
    ):
        key = task_metric(runs[runs["sweep"] == sweep], task, metric)
        done = grp[grp["status"] == "done"]
        values = done[key].dropna() if key is not None and key in done.columns else pd.Series(dtype=float)
        rows.append(
            {
                "sweep": sweep,
                "task": task,
                "attention": att,
                "pos_enc": pos,
                "metric": key,
                "mean": float(values.mean()) if len(values) else math.nan,
                "std": float(values.std(ddof=1)) if len(values) > 1 else math.nan,
                "n_runs": len(grp),
                "n_done": int(len(values)),
                "n_failed": int((grp["status"] == "failed").sum()),
                "n_other": int((~grp["status"].isin(["done", "failed", "unsupported"])).sum()),
                "n_unsupported": int((grp["status"] == "unsupported").sum()),
                "seeds": " ".join(str(s) for s in sorted(done["seed"].dropna().tolist())),
                "substitute": bool(grp["substitute"].fillna(False).astype(bool).any()),
            }
        )
    out = pd.DataFrame(rows)
    order = {
        "task": {t: i for i, t in enumerate(ordered(out["task"], "task"))},
        "attention": {a: i for i, a in enumerate(ordered(out["attention"], "attention"))},
        "pos_enc": {p: i for i, p in enumerate(ordered(out["pos_enc"], "pos_enc"))},
    }
    sort_key = out.apply(lambda r: (str(r["sweep"]), *(order[c].get(r[c], 99) for c in order)), axis=1)
    return out.loc[sort_key.sort_values().index].reset_index(drop=True)


# ---------------------------------------------------------------------------------------- markdown
def format_cell(mean: float, std: float, n_done: int, n_failed: int, digits: int = 4) -> str:
    """'0.3712 ± 0.0040 (3)'; '—' when nothing finished; failures appended as ', 1 failed'."""
    if n_done == 0:
        text = "—"
    elif math.isnan(std):
        text = f"{mean:.{digits}f} ({n_done})"
    else:
        text = f"{mean:.{digits}f} ± {std:.{digits}f} ({n_done})"
    if n_failed:
        text += f", {n_failed} failed"
    return text


def _md_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def to_markdown(summary: pd.DataFrame, runs: pd.DataFrame) -> str:
    """Per sweep and task: attention (rows) x pos_enc (columns) of mean ± std (n finished)."""
    parts = [
        "# Sweep summary",
        "",
        "Cells: mean ± sample standard deviation (ddof=1) over seeds of the task's test metric, "
        "(n) finished runs; '—': no finished run; n/a: an attention × pos_enc pair that cannot work.",
    ]
    if summary.empty:
        parts += ["", "No results.json found."]
        return "\n".join(parts) + "\n"
    for (sweep, task), tab in summary.groupby(["sweep", "task"], sort=False):
        metric = tab["metric"].dropna().iloc[0] if tab["metric"].notna().any() else "no metric"
        better = "lower" if metric != "no metric" and lower_is_better(metric) else "higher"
        title = f"## {task} — `{metric}` ({better} is better)"
        if summary["sweep"].nunique() > 1:
            title += f" — sweep `{sweep}`"
        parts += ["", title, ""]
        trows = runs[(runs["sweep"] == sweep) & (runs["task"] == task)]
        if tab["substitute"].any():
            desc = "; ".join(sorted({d for d in trows["description"].dropna() if d}))
            parts += [f"*Substitute data (not the benchmark's own){': ' + desc if desc else ''}.*", ""]
        atts = ordered(tab["attention"], "attention")
        poss = ordered(tab["pos_enc"], "pos_enc")
        cells = {(r.attention, r.pos_enc): r for r in tab.itertuples()}
        body = []
        for att in atts:
            line = [str(att)]
            for pos in poss:
                r = cells.get((att, pos))
                if r is not None and r.n_unsupported == r.n_runs:  # an impossible pair, not a failure
                    line.append("n/a")
                    continue
                line.append(format_cell(r.mean, r.std, r.n_done, r.n_failed) if r is not None else "")
            body.append(line)
        parts.append(_md_table(["attention \\ pos_enc", *map(str, poss)], body))
        n_runs, n_done, n_failed = int(tab["n_runs"].sum()), int(tab["n_done"].sum()), int(tab["n_failed"].sum())
        n_other, n_unsup = int(tab["n_other"].sum()), int(tab["n_unsupported"].sum())
        parts += [
            "",
            f"Runs: {n_runs}, finished: {n_done}, failed: {n_failed}"
            + (f", unsupported (n/a): {n_unsup}" if n_unsup else "")
            + (f", unfinished: {n_other}." if n_other else "."),
        ]
    unusable = runs[runs["error"].fillna("").astype(str).str.startswith(UNUSABLE)]
    if len(unusable):
        parts += ["", "## Unusable results.json files", ""]
        body = [
            [f"`{r.run_dir}`", str(r.error).replace("|", "\\|").replace("\n", " ")[:200]] for r in unusable.itertuples()
        ]
        parts.append(_md_table(["run dir", "problem"], body))
    failed = runs[(runs["status"] == "failed") & ~runs.index.isin(unusable.index)]
    if len(failed):
        parts += ["", "## Failed runs", ""]
        body = [
            [
                str(r.task),
                str(r.attention),
                str(r.pos_enc),
                str(r.seed),
                str(r.error or "").replace("|", "\\|").replace("\n", " ")[:200],
            ]
            for r in failed.itertuples()
        ]
        parts.append(_md_table(["task", "attention", "pos_enc", "seed", "error"], body))
    return "\n".join(parts) + "\n"


# -------------------------------------------------------------------------------------------- main
@dataclass
class Report:
    runs: pd.DataFrame
    summary: pd.DataFrame
    markdown: str
    files: list[Path] = field(default_factory=list)


def build_report(
    sweep_dirs: Sequence[str | Path], out_dir: str | Path | None = None, metric: str | None = None, plots: bool = True
) -> Report:
    """Load, summarise and write runs.csv, summary.csv, summary.md (and PNGs) into out_dir."""
    if not sweep_dirs:
        raise ValueError("report: pass at least one SWEEP_DIR")
    runs = load_runs(sweep_dirs)
    summary = summarize(runs, metric)
    md = to_markdown(summary, runs)
    out = Path(out_dir if out_dir is not None else sweep_dirs[0])
    out.mkdir(parents=True, exist_ok=True)
    files = [out / "runs.csv", out / "summary.csv", out / "summary.md"]
    runs.to_csv(files[0], index=False)
    summary.to_csv(files[1], index=False)
    files[2].write_text(md)
    if plots and not summary.empty:
        from spelab import report_plots

        files += report_plots.write_plots(runs, summary, out)
    return Report(runs, summary, md, files)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m spelab.report", description=__doc__.split("\n\n")[0])
    parser.add_argument("sweep_dirs", nargs="+", metavar="SWEEP_DIR", help="sweep dirs holding run dirs")
    parser.add_argument("--out", default=None, help="where to write the files (default: the first SWEEP_DIR)")
    parser.add_argument(
        "--metric",
        default=None,
        help="compare on this metric key (default: per task, " + " then ".join(METRIC_PRIORITY) + ")",
    )
    parser.add_argument("--no-plots", action="store_true", help="tables only")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        rep = build_report(args.sweep_dirs, args.out, args.metric, plots=not args.no_plots)
    except (FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(rep.markdown)
    print("wrote: " + ", ".join(str(f) for f in rep.files))
    return 0


if __name__ == "__main__":
    sys.exit(main())
