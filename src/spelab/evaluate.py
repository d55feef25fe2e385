"""NLL versus position: how a causal LM trained on windows of L tokens does on longer sequences.

    python -m spelab.evaluate ckpt=PATH max_length=N output_dir=DIR
    python -m spelab.evaluate 'ckpt=[A.ckpt,B.ckpt]' max_length=N output_dir=DIR
    python -m spelab.evaluate sweep_dir=logs/sweeps/NAME max_length=N output_dir=DIR

For every run: the first N+1 tokens of each test piece (no augmentation), per-position NLL averaged
over the pieces that reach that position, token-weighted means "within" (< L) and "beyond" (>= L) the
training length. Writes `nll_eval.json` and `nll_vs_position.png` (all runs on one figure) into DIR,
`nll_vs_position.json` ({positions, nll} per bin, for spelab.report) into each run's directory, and logs the figure to W&B (offline unless wandb_online=true). As in the paper's eval.py.
Runs that differ only by their training seed are aggregated (spelab.eval_seeds): `aggregate` in the
JSON, the figure shows mean ± std per bin, and `nll_table.md` the summary table.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from spelab.eval_seeds import aggregate_seeds, plot_aggregate, save_nll_figure, table_markdown

log = logging.getLogger(__name__)

RESULTS_JSON = "nll_eval.json"  # all runs, in output_dir
RUN_CURVE_JSON = "nll_vs_position.json"  # per run, in its run dir (read by spelab.report)
FIGURE_PNG = "nll_vs_position.png"
TABLE_MD = "nll_table.md"  # mean ± std over seeds, in output_dir (when a run has several seeds)


@dataclass
class EvalConfig:
    ckpt: Any = None  # a path or a list of paths
    sweep_dir: str | None = None  # every <run>/checkpoints/{best,last}.ckpt below it
    max_length: int = 2048  # evaluated tokens per piece (N); typically 4x the training length
    output_dir: str = "nll_eval"
    split: str = "test"
    max_pieces: int | None = None  # evaluate on the first pieces only
    batch_size: int = 4
    device: str = "auto"
    seed: int = 0  # SPE codes are random: fixes the draw
    bin_size: int | None = None  # plot/report windows; default: training length / 8
    data_dir: str | None = None  # override the data location stored in the run config
    write_run_curves: bool = True  # also <run dir>/nll_vs_position.json
    wandb: bool = True
    wandb_online: bool = False


# -- the measurement -----------------------------------------------------------------------------


@torch.no_grad()
def per_position_nll(
    task, sequences: Sequence[torch.Tensor], batch_size: int = 4, device: torch.device | str = "cpu"
) -> tuple[np.ndarray, np.ndarray]:
    """Sum of NLL and count of pieces at each predicted position (position t = predicting token t+1)."""
    length = max(int(s.numel()) for s in sequences) - 1
    total = torch.zeros(length, dtype=torch.float64)
    count = torch.zeros(length, dtype=torch.float64)
    task.eval()
    for start in range(0, len(sequences), batch_size):
        chunk = sequences[start : start + batch_size]
        n = max(int(s.numel()) for s in chunk)
        ids = torch.full((len(chunk), n), task.pad_id, dtype=torch.long)
        pad = torch.ones(len(chunk), n, dtype=torch.bool)
        for i, s in enumerate(chunk):
            ids[i, : s.numel()], pad[i, : s.numel()] = s, False
        nll, valid = task.token_nll({"input_ids": ids.to(device), "padding_mask": pad.to(device)})
        total[: n - 1] += nll.double().sum(0).cpu()
        count[: n - 1] += valid.double().sum(0).cpu()
    return total.numpy(), count.numpy()


def summarise(total: np.ndarray, count: np.ndarray, train_length: int, bin_size: int) -> dict[str, Any]:
    """Per-position means, per-bin means and the within/beyond-training-length averages."""
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(count > 0, total / np.maximum(count, 1), np.nan)
    bins = []
    for lo in range(0, len(total), bin_size):
        hi = min(lo + bin_size, len(total))
        c = count[lo:hi].sum()
        bins.append({"start": lo, "end": hi, "nll": float(total[lo:hi].sum() / c) if c else None, "tokens": int(c)})

    def avg(lo: int, hi: int) -> float | None:
        c = count[lo:hi].sum()
        return float(total[lo:hi].sum() / c) if c else None

    return {
        "nll": [None if np.isnan(x) else float(x) for x in mean],
        "count": count.astype(int).tolist(),
        "bins": bins,
        "bin_size": bin_size,
        "nll_within": avg(0, train_length),
        "nll_beyond": avg(train_length, len(total)),
        "tokens_within": int(count[:train_length].sum()),
        "tokens_beyond": int(count[train_length:].sum()),
    }


# -- runs -------------------------------------------------------------------------------------------


def find_checkpoints(sweep_dir: str | Path) -> list[Path]:
    """One checkpoint per run below `sweep_dir`: best.ckpt, else last.ckpt."""
    root = Path(sweep_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"sweep_dir={root} is not a directory")
    found = []
    for ckpt_dir in sorted(root.rglob("checkpoints")):
        for name in ("best.ckpt", "last.ckpt"):
            if (ckpt_dir / name).is_file():
                found.append(ckpt_dir / name)
                break
    if not found:
        raise FileNotFoundError(f"no checkpoints/best.ckpt or last.ckpt below sweep_dir={root}")
    return found


def run_label(cfg, run_dir: Path | None, ckpt: Path) -> dict[str, str]:
    """attention / pos_enc names of a run (from results.json or the Hydra choices), and a label."""
    info = {"attention": "?", "pos_enc": "?"}
    if run_dir is not None:
        results = run_dir / "results.json"
        hydra_cfg = run_dir / ".hydra" / "hydra.yaml"
        if results.is_file():
            data = json.loads(results.read_text())
            info.update({k: str(data[k]) for k in ("attention", "pos_enc") if k in data})
        elif hydra_cfg.is_file():
            from omegaconf import OmegaConf

            choices = OmegaConf.load(hydra_cfg).hydra.runtime.choices
            info.update({k: str(choices.get(k, "?")) for k in ("attention", "pos_enc")})
    info["label"] = f"{info['attention']}-{info['pos_enc']}" if "?" not in info.values() else ckpt.parent.parent.name
    return info


def run_seed_and_test_nll(cfg, run_dir: Path | None) -> dict[str, Any]:
    """The training seed (to aggregate seeds) and the run's test/nll from results.json, when known."""
    out: dict[str, Any] = {
        "seed": int(cfg.seed) if cfg.get("seed") is not None else None,
        "test_nll": None,
        # the run dir without its seed (seed<N>-<hash of the other overrides>): one configuration
        "config_id": re.sub(r"^seed-?\d+", "", run_dir.name) if run_dir is not None else None,
    }
    results = run_dir / "results.json" if run_dir is not None else None
    if results is not None and results.is_file():
        out["test_nll"] = json.loads(results.read_text()).get("metrics", {}).get("test/nll")
    return out


def build_datamodule(cfg, data_dir: str | None = None, max_pieces: int | None = None):
    from hydra.utils import instantiate

    from spelab.tracking import register_resolvers

    register_resolvers()
    overrides: dict[str, Any] = {}
    if data_dir is not None:
        overrides["data_dir"] = data_dir
    if max_pieces is not None and "max_pieces" in cfg.task.datamodule:
        overrides["max_pieces"] = max_pieces
    return instantiate(cfg.task.datamodule, **overrides)


def evaluate_checkpoint(ckpt: str | Path, ecfg: EvalConfig, device: torch.device, datamodules: dict) -> dict:
    from omegaconf import OmegaConf

    from spelab.run_loading import find_run_config, load_language_model

    ckpt = Path(ckpt)
    cfg, run_dir = find_run_config(ckpt)
    if cfg is None:
        raise FileNotFoundError(f"no .hydra/config.yaml above {ckpt}: evaluate needs a run written by run.py")
    key = json.dumps(OmegaConf.to_container(cfg.task.datamodule, resolve=False), sort_keys=True, default=str)
    if key not in datamodules:  # runs of one sweep share their data
        datamodules[key] = build_datamodule(cfg, ecfg.data_dir, ecfg.max_pieces)
    dm = datamodules[key]
    task = load_language_model(str(ckpt), map_location=device)
    model_len = getattr(task.model, "max_len", None)
    if task.model.absolute is not None and hasattr(task.model.absolute, "weight") and model_len < ecfg.max_length:
        raise ValueError(
            f"{ckpt}: a learned absolute encoding has {model_len} positions, fewer than "
            f"max_length={ecfg.max_length}; train it with model.max_len>={ecfg.max_length}"
        )
    prefixes = dm.prefixes(ecfg.split, ecfg.max_length)
    sequences = [prefixes[i]["input_ids"] for i in range(len(prefixes))]
    if ecfg.max_pieces:
        sequences = sequences[: ecfg.max_pieces]
    torch.manual_seed(ecfg.seed)
    total, count = per_position_nll(task, sequences, ecfg.batch_size, device)
    train_length = int(cfg.task.datamodule.max_length)
    result = summarise(total, count, train_length, ecfg.bin_size or max(1, train_length // 8))
    result.update(run_label(cfg, run_dir, ckpt))
    result.update(run_seed_and_test_nll(cfg, run_dir))
    result.update(
        {
            "ckpt": str(ckpt),
            "train_length": train_length,
            "eval_length": ecfg.max_length,
            "num_pieces": len(sequences),
            "task": str(cfg.task.name),
            "pieces_reaching_eval_length": int(sum(s.numel() >= ecfg.max_length + 1 for s in sequences)),
        }
    )
    if ecfg.write_run_curves and run_dir is not None:
        write_run_curve(run_dir / RUN_CURVE_JSON, result)
    log.info(
        "%s: NLL within %.4f, beyond %s (pieces %d)",
        result["label"],
        result["nll_within"] or float("nan"),
        result["nll_beyond"],
        len(sequences),
    )
    return result


def write_run_curve(path: Path, result: dict) -> None:
    """The per-run curve in spelab.report's format: bin centres and bin means, plus the summary."""
    bins = [b for b in result["bins"] if b["nll"] is not None]
    curve = {
        "positions": [(b["start"] + b["end"] - 1) / 2 for b in bins],
        "nll": [b["nll"] for b in bins],
        **{
            k: result[k]
            for k in ("train_length", "eval_length", "bin_size", "nll_within", "nll_beyond", "num_pieces", "ckpt")
        },
    }
    try:
        path.write_text(json.dumps(curve, indent=1) + "\n")
    except OSError as err:  # a read-only run dir must not lose the measurement in output_dir
        log.warning("could not write %s: %s", path, err)


# -- outputs ----------------------------------------------------------------------------------------


def plot_runs(runs: list[dict], path: Path):
    """NLL per bin versus position, one line per run, a dashed line at each training length."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for run in runs:
        xs = [(b["start"] + b["end"]) / 2 for b in run["bins"] if b["nll"] is not None]
        ys = [b["nll"] for b in run["bins"] if b["nll"] is not None]
        ax.plot(xs, ys, marker=".", label=run["label"])
    return save_nll_figure(fig, ax, runs, path, "NLL (nats/token)")


def log_to_wandb(runs: list[dict], figure: Path, output_dir: Path, online: bool) -> None:
    try:
        import wandb
    except ImportError:  # pragma: no cover - wandb is a dependency
        return
    run = wandb.init(
        project="spe-music",
        job_type="evaluate",
        dir=str(output_dir),
        mode="online" if online else "offline",
        config={"runs": [r["ckpt"] for r in runs]},
        reinit="finish_previous",
    )  # the bool form is deprecated (a warning per run)
    table = wandb.Table(
        columns=["label", "nll_within", "nll_beyond", "train_length", "eval_length"],
        data=[[r["label"], r["nll_within"], r["nll_beyond"], r["train_length"], r["eval_length"]] for r in runs],
    )
    run.log({"eval/nll_vs_position": wandb.Image(str(figure)), "eval/summary": table})
    run.finish()


def evaluate(ecfg: EvalConfig) -> dict:
    ckpts: list[Path] = []
    if ecfg.ckpt:
        ckpts += [Path(c) for c in (ecfg.ckpt if isinstance(ecfg.ckpt, (list, tuple)) else [ecfg.ckpt])]
    if ecfg.sweep_dir:
        ckpts += find_checkpoints(ecfg.sweep_dir)
    if not ckpts:
        raise ValueError("evaluate: give ckpt=PATH (or a list) or sweep_dir=DIR")
    if ecfg.max_length < 2:
        raise ValueError(f"evaluate: max_length must be >= 2, got {ecfg.max_length}")
    if ecfg.device == "auto":
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        device = torch.device(ecfg.device)
    datamodules: dict = {}
    runs = [evaluate_checkpoint(c, ecfg, device, datamodules) for c in ckpts]
    out = Path(ecfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    groups = aggregate_seeds(runs)
    summary = {"split": ecfg.split, "max_length": ecfg.max_length, "seed": ecfg.seed, "runs": runs, "aggregate": groups}
    (out / RESULTS_JSON).write_text(json.dumps(summary, indent=1) + "\n")
    several_seeds = any(g["n"] > 1 for g in groups)  # then one line per configuration, mean ± std
    figure = plot_aggregate(groups, out / FIGURE_PNG) if several_seeds else plot_runs(runs, out / FIGURE_PNG)
    if several_seeds:
        (out / TABLE_MD).write_text(table_markdown(groups))
    if ecfg.wandb:
        try:
            log_to_wandb(runs, figure, out, ecfg.wandb_online)
        except Exception as err:  # tracking must never lose the measurement
            log.warning("W&B logging failed: %s", err)
    for r in runs:
        print(
            f"{r['label']:<24} within(<{r['train_length']}) {r['nll_within']!s:<22} "
            f"beyond {r['nll_beyond']!s:<22} pieces {r['num_pieces']}"
        )
    for g in groups if several_seeds else []:
        print(
            f"{g['label']:<24} n={g['n']} within {g['nll_within_mean']:.4f} ± {g['nll_within_std']:.4f}  "
            f"beyond {g['nll_beyond_mean']:.4f} ± {g['nll_beyond_std']:.4f}"
        )
    print(f"wrote {out / RESULTS_JSON} and {figure}")
    return summary


def main(argv: Sequence[str] | None = None) -> dict:
    """`key=value` arguments (OmegaConf dotlist) over the EvalConfig defaults."""
    from spelab.cli import run_tool

    return run_tool(evaluate, EvalConfig, argv, "spelab.evaluate")  # one-line errors for a wrong path or checkpoint


if __name__ == "__main__":
    main()
