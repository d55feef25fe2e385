"""What spelab.report and spelab.report_plots share: display order, metric direction, NLL curves.

Both import from here and report_plots never imports report, so the two do not import each other.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any, Iterable

from spelab import registry

log = logging.getLogger(__name__)

CURVE_FILE = "nll_vs_position.json"
LOWER_IS_BETTER = ("nll", "loss", "ppl", "bpc")


def ordered(values: Iterable[Any], group: str) -> list:
    """The distinct values in the display order of a conf group (task, attention, pos_enc): its
    options' `# @order` headers (spelab.registry); names it does not hold follow alphabetically."""
    vals = [v for v in dict.fromkeys(values) if v is not None and not (isinstance(v, float) and math.isnan(v))]
    rank = {name: i for i, name in enumerate(registry.names(group))}
    return sorted(vals, key=lambda v: (rank.get(v, len(rank)), str(v)))


def lower_is_better(metric: str) -> bool:
    return any(word in metric.rsplit("/", 1)[-1] for word in LOWER_IS_BETTER)


def load_curve(run_dir: str | Path) -> dict[str, list[float]] | None:
    """The run's NLL-versus-position curve ({"positions": [...], "nll": [...]}) or None when absent or
    malformed (warned): the music evaluation writes it, other runs have none."""
    run_dir = Path(run_dir)
    path = run_dir / CURVE_FILE
    if not path.is_file():
        found = sorted(run_dir.rglob(CURVE_FILE))
        if not found:
            return None
        path = found[0]
    try:
        data = json.loads(path.read_text())
        pos, nll = [float(x) for x in data["positions"]], [float(x) for x in data["nll"]]
        if len(pos) != len(nll) or not pos:
            raise ValueError(f"positions ({len(pos)}) and nll ({len(nll)}) differ in length or are empty")
    except (OSError, ValueError, KeyError, TypeError) as err:
        log.warning("skipping %s: %s", path, err)
        return None
    return {"positions": pos, "nll": nll}
