"""The paper's settings against spelab's: compose every cell of a grid, compare with the official record.

    python -m spelab.paper_settings          # rewrites experiments/{lra,music}/paper_settings.md
    python -m spelab.paper_settings --check  # exit 1 on an undocumented difference or a stale table

The official values live in experiments/<family>/official_settings.yaml, each with the file it was read
from; deliberate departures (with their reasons) in experiments/<family>/departures.yaml. A cell of a
grid is composed exactly as `python run.py experiment=... attention=... pos_enc=...` would be.
"""

from __future__ import annotations

import argparse
import fnmatch
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import yaml

ROOT = Path(__file__).resolve().parents[2]
CONF = ROOT / "conf"
FAMILIES = ("lra", "music")
NA = "n/a"

# official model name of the SPE repo's runs, per attention backend (softmax cells: no official run,
# their task values are read from the Performer baseline's file)
RUN_MODEL = {"performer": "performer_softmax", "linear": "linear_transformer_relu", "softmax": "performer_softmax"}
RUN_SUFFIX = {"sinespe": "_sinespe", "convspe": "_convspe_k128_shr"}
ONLY_FOR = {
    "attention_dropout": {"softmax"},
    "num_features": {"performer"},
    "redraw": {"performer"},
    "redraw_eval": {"performer"},
    "feature_map": {"linear"},
    "kernel_epsilon": {"linear"},
}


def _get(cfg: Any, path: str, default: Any = None) -> Any:
    from omegaconf import OmegaConf

    value = OmegaConf.select(cfg, path, default=default)
    return OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value


def _kernel_epsilon(cfg: Any) -> Any:
    from spelab.nn.attention.feature_maps import RELU_OFFSET

    return RELU_OFFSET if _get(cfg, "model.attention.feature_map") == "relu" else None


def _head(cfg: Any) -> str:
    hidden = _get(cfg, "task.module.head_mlp_dim") or _get(cfg, "model.d_model")
    if _get(cfg, "task.name") != "retrieval":
        return f"mlp {hidden}"
    widths = f"{hidden}, {hidden // 2}" if _get(cfg, "task.module.head_layers", 1) == 2 else f"{hidden}"
    return f"{_get(cfg, 'task.module.head_interaction', 'nli')}, mlp {widths}"


def _codes(cfg: Any) -> str:
    return (
        "per_layer" if not _get(cfg, "model.share_code", True) or _get(cfg, "model.code_per_layer", False) else "shared"
    )


# hyperparameter -> its value in a composed spelab config (absent keys take the code's default)
SPELAB: dict[str, Callable[[Any], Any]] = {
    "max_length": lambda c: _get(c, "task.datamodule.max_length"),
    "legacy_tokenizer": lambda c: _get(c, "task.datamodule.legacy_tokenizer", False),
    "d_model": lambda c: _get(c, "model.d_model"),
    "num_layers": lambda c: _get(c, "model.num_layers"),
    "num_heads": lambda c: _get(c, "model.num_heads"),
    "ff_dim": lambda c: _get(c, "model.ff_dim"),
    "qkv_dim": lambda c: _get(c, "model.qkv_dim") or _get(c, "model.d_model"),
    "dropout": lambda c: _get(c, "model.dropout"),
    # fixed by spelab.nn.Transformer's block (pre-norm, GELU feed-forward)
    "norm": lambda c: "pre",
    "ff_activation": lambda c: "gelu",
    "attention_dropout": lambda c: _get(c, "model.attention.dropout", 0.0),
    "pooling": lambda c: _get(c, "task.module.pooling"),
    "head": lambda c: _head(c),
    # the batch of one optimizer step
    "batch_size": lambda c: _get(c, "task.datamodule.batch_size") * (_get(c, "trainer.accumulate_grad_batches") or 1),
    "lr": lambda c: _get(c, "task.module.lr"),
    "schedule": lambda c: _get(c, "task.module.schedule"),
    "warmup_steps": lambda c: _get(c, "task.module.warmup_steps"),
    "min_lr_ratio": lambda c: _get(c, "task.module.min_lr_ratio", 0.0),
    "max_steps": lambda c: _get(c, "trainer.max_steps"),
    "weight_decay": lambda c: _get(c, "task.module.weight_decay"),
    "weight_decay_all": lambda c: _get(c, "task.module.weight_decay_all", False),
    "betas": lambda c: _get(c, "task.module.betas", [0.9, 0.98]),
    "eps": lambda c: _get(c, "task.module.eps", 1e-9),
    "gradient_clip": lambda c: _get(c, "trainer.gradient_clip_val"),
    "eval_every": lambda c: _get(c, "trainer.val_check_interval"),
    "eval_batches": lambda c: _get(c, "trainer.limit_val_batches"),
    "eval_batch_size": lambda c: _get(c, "task.datamodule.eval_batch_size"),
    "num_features": lambda c: _get(c, "model.attention.num_features"),
    "redraw": lambda c: _get(c, "model.attention.redraw"),
    "redraw_eval": lambda c: _get(c, "model.attention.redraw_eval", False),
    "feature_map": lambda c: _get(c, "model.attention.feature_map"),
    "kernel_epsilon": _kernel_epsilon,
    "num_realizations": lambda c: _get(c, "model.pos_enc.num_realizations"),
    "num_sines": lambda c: _get(c, "model.pos_enc.num_sines"),
    "kernel_size": lambda c: _get(c, "model.pos_enc.kernel_size"),
    "gated": lambda c: _get(c, "model.pos_enc.gated"),
    "spe_params": lambda c: "shared" if _get(c, "model.share_code", True) else "per_layer",
    "codes": _codes,
}


@dataclass(frozen=True)
class Cell:
    family: str
    task: str
    cell: str  # "<attention>-<pos_enc>" (LRA) or the positional scheme (music)
    overrides: tuple[str, ...]


def load_yaml(path: Path) -> Any:
    with open(path) as f:
        return yaml.safe_load(f)


def grid_cells(family: str) -> list[Cell]:
    """Every cell of conf/sweep/<family>_grid.yaml (seeds aside), plus Path-X (not in lra_grid)."""
    params = load_yaml(CONF / "sweep" / f"{family}_grid.yaml")["hydra"]["sweeper"]["params"]
    experiments = params["experiment"].split(",")
    cells = []
    if family == "lra":
        for exp in experiments + ["lra/pathx"]:
            for att in params["attention"].split(","):
                for pe in params["pos_enc"].split(","):
                    cells.append(
                        Cell(
                            family,
                            exp.split("/")[1],
                            f"{att}-{pe}",
                            (f"experiment={exp}", f"attention={att}", f"pos_enc={pe}"),
                        )
                    )
    else:
        for exp in experiments:
            task, pe = exp.split("/")[1].rsplit("_", 1)
            cells.append(Cell(family, task, pe, (f"experiment={exp}",)))
    return cells


def compose(cell: Cell) -> Any:
    from hydra import compose as hydra_compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    with initialize_config_dir(version_base="1.3", config_dir=str(CONF)):
        return hydra_compose("config", overrides=list(cell.overrides))


def official(record: dict, cell: Cell) -> tuple[dict[str, tuple[Any, str, str]], bool]:
    """{hyperparameter: (value, source file, its template)} for a cell, and whether it is an official run."""
    task = record["tasks"][cell.task]
    files = {**record.get("common_files", {}), **task["files"]}
    if cell.family == "lra":
        att, pe = cell.cell.split("-")
        baseline = task.get("baseline_pos_enc", "sinusoidal")
        runs = task.get(
            "official_runs", [f"{a}-{p}" for a in ("performer", "linear") for p in (baseline, "sinespe", "convspe")]
        )
        is_run = cell.cell in runs
        model = RUN_MODEL[att] + RUN_SUFFIX.get(pe, "")
        layers = [
            record.get("all_cells", {}),
            task["base"],
            record["attention"].get(att, {}),
            record["pos_enc"].get(pe, {}),
            task.get("cells", {}).get(cell.cell, {}),
        ]
    else:
        att, pe, model, is_run = "performer", cell.cell, "", True
        layers = [record.get("all_cells", {}), task["base"], task.get("cells", {}).get(cell.cell, {})]
    out = {}
    for layer in layers:
        for name, (value, alias) in layer.items():
            if name in ONLY_FOR and att not in ONLY_FOR[name]:
                continue
            out[name] = (value, _source(record, files, alias, model), _source(record, files, alias, "<model>"))
    return out, is_run


def _source(record: dict, files: dict, alias: str, model: str) -> str:
    ref = files[alias]
    repo_alias, path = ref.split(":", 1)
    return f"{record['repos'][repo_alias].split('@')[0]}/{path.format(model=model)}"


def same(a: Any, b: Any) -> bool:
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return math.isclose(a, b, rel_tol=1e-6, abs_tol=0.0)
    return a == b


def departure_for(departures: list[dict], cell: Cell, name: str, value: Any) -> int | None:
    """Index of the departure that documents `value` for this task/cell/hyperparameter, if any."""
    for i, d in enumerate(departures):
        if (
            d["hyperparameter"] == name
            and fnmatch.fnmatch(cell.task, d.get("task", "*"))
            and fnmatch.fnmatch(cell.cell, d.get("cell", "*"))
            and same(d["spelab"], value)
        ):
            return i
    return None


@dataclass
class Row:
    cell: Cell
    name: str
    official: Any
    source: str
    template: str  # the source with the SPE repo's model directory left as <model>
    spelab: Any
    departure: int | None
    is_run: bool

    @property
    def undocumented(self) -> bool:
        return not same(self.official, self.spelab) and self.departure is None


def compare(family: str, cells: list[Cell] | None = None, composed: dict | None = None) -> list[Row]:
    record = load_yaml(ROOT / "experiments" / family / "official_settings.yaml")
    departures = load_yaml(ROOT / "experiments" / family / "departures.yaml") or []
    rows = []
    for cell in cells if cells is not None else grid_cells(family):
        cfg = composed[cell] if composed is not None and cell in composed else compose(cell)
        values, is_run = official(record, cell)
        for name, (value, source, template) in values.items():
            got = SPELAB[name](cfg)
            dep = None if same(value, got) else departure_for(departures, cell, name, got)
            rows.append(Row(cell, name, value, source, template, got, dep, is_run))
    return rows


def _fmt(v: Any) -> str:
    if v is None:
        return "none"
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, float):
        return f"{v:.6g}"
    if isinstance(v, (list, tuple)):
        return "(" + ", ".join(_fmt(x) for x in v) + ")"
    return str(v)


def render(family: str, rows: list[Row]) -> str:
    """Markdown: per task, hyperparameters x cells (official value, spelab's when it differs)."""
    departures = load_yaml(ROOT / "experiments" / family / "departures.yaml") or []
    out = [
        f"# The paper's settings against spelab's ({family})",
        "",
        "Generated by `python -m spelab.paper_settings` from experiments/"
        f"{family}/official_settings.yaml (each official value with its file) and "
        f"experiments/{family}/departures.yaml; checked by tests/test_paper_settings.py. "
        "A cell shows the official value; `official → spelab [Dn]` where spelab deliberately "
        "departs (reason Dn below); — where the hyperparameter does not apply. Cells marked * had no "
        "official run: they carry the task's official values. In sources, <model> is the SPE "
        "repository's run directory of the cell (performer_softmax, linear_transformer_relu, with "
        "_sinespe or _convspe_k128_shr; softmax cells read the Performer's).",
        "",
    ]
    tasks = list(dict.fromkeys(r.cell.task for r in rows))
    for task in tasks:
        trows = [r for r in rows if r.cell.task == task]
        cells = list(dict.fromkeys(r.cell for r in trows))
        names = list(dict.fromkeys(r.name for r in trows))
        by = {(r.cell, r.name): r for r in trows}
        exp = cells[0].overrides[0].split("=", 1)[1]
        out += [f"## {task} (`experiment={exp}`)", ""]
        head = ["hyperparameter"] + [c.cell + ("" if by_run(trows, c) else "*") for c in cells] + ["source"]
        out += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for name in names:
            line, sources = [name], []
            for c in cells:
                r = by.get((c, name))
                if r is None:
                    line.append("—")
                    continue
                sources.append(r.template)
                if same(r.official, r.spelab):
                    line.append(_fmt(r.official))
                else:
                    tag = f"D{r.departure + 1}" if r.departure is not None else "UNDOCUMENTED"
                    line.append(f"{_fmt(r.official)} → {_fmt(r.spelab)} [{tag}]")
            line.append("<br>".join(sorted(set(sources))))
            out.append("| " + " | ".join(line) + " |")
        out.append("")
    out += ["## Deliberate departures", ""]
    for i, d in enumerate(departures):
        out.append(
            f"- **D{i + 1}** `{d['hyperparameter']}` (task {d.get('task', '*')}, cell {d.get('cell', '*')}): "
            f"spelab {_fmt(d['spelab'])}. {d['reason']}"
        )
    return "\n".join(out) + "\n"


def by_run(rows: list[Row], cell: Cell) -> bool:
    return any(r.is_run for r in rows if r.cell == cell)


def table_path(family: str) -> Path:
    return ROOT / "experiments" / family / "paper_settings.md"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="fail on undocumented differences or a stale table")
    args = ap.parse_args(argv)
    status = 0
    for family in FAMILIES:
        rows = compare(family)
        bad = [r for r in rows if r.undocumented]
        for r in bad:
            print(
                f"{family}/{r.cell.task}/{r.cell.cell}: {r.name} official {_fmt(r.official)} ({r.source}) "
                f"!= spelab {_fmt(r.spelab)}",
                file=sys.stderr,
            )
        text = render(family, rows)
        if args.check:
            if table_path(family).read_text() != text:
                print(f"{table_path(family)} is stale: run python -m spelab.paper_settings", file=sys.stderr)
                status = 1
        else:
            table_path(family).write_text(text)
        status = status or int(bool(bad))
    return status


if __name__ == "__main__":
    sys.exit(main())
