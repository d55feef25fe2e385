"""experiment=lra/* and experiment=music/* against the official settings (experiments/*/official_settings.yaml):
every composed cell of lra_grid (and Path-X) and music_grid equals the official value, or the difference is
a listed departure (experiments/*/departures.yaml); the committed tables are what the generator writes.
Composition only (no training). The fast test composes a representative cell per task; the exhaustive one
(~100 compositions) is slow."""

from __future__ import annotations

import pytest

from spelab import paper_settings as ps

# one official run and one no-official-run cell per LRA task, the per-cell exceptions, and all of music
FAST_CELLS = {
    "listops": {"linear-sinespe", "softmax-none", "performer-convspe"},
    "text": {"performer-sinusoidal", "linear-convspe"},
    "retrieval": {"performer-sinespe"},
    "image": {"linear-convspe", "softmax-learned"},
    "pathfinder": {"softmax-sinusoidal"},
    "pathx": {"softmax-learned"},
}


def _fast(family: str) -> list[ps.Cell]:
    cells = ps.grid_cells(family)
    return cells if family == "music" else [c for c in cells if c.cell in FAST_CELLS.get(c.task, set())]


def _undocumented(rows: list[ps.Row]) -> list[str]:
    return [
        f"{r.cell.task}/{r.cell.cell}: {r.name} official {r.official!r} ({r.source}) != spelab {r.spelab!r}"
        for r in rows
        if r.undocumented
    ]


@pytest.mark.parametrize("family", ps.FAMILIES)
def test_representative_cells_have_no_undocumented_difference(family: str) -> None:
    rows = ps.compare(family, _fast(family))
    bad = _undocumented(rows)
    assert rows and not bad, "\n".join(bad)


def test_every_grid_task_has_an_official_record() -> None:
    for family in ps.FAMILIES:
        record = ps.load_yaml(ps.ROOT / "experiments" / family / "official_settings.yaml")
        assert {c.task for c in ps.grid_cells(family)} <= set(record["tasks"])


def test_a_changed_value_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    cell = next(c for c in ps.grid_cells("lra") if c.task == "listops" and c.cell == "performer-sinusoidal")
    cell = ps.Cell(cell.family, cell.task, cell.cell, cell.overrides + ("trainer.gradient_clip_val=1.0",))
    bad = _undocumented(ps.compare("lra", [cell]))
    assert bad == [
        "listops/performer-sinusoidal: gradient_clip official None "
        "(cifkao/long-range-arena/lra_benchmarks/text_classification/train.py) != spelab 1.0"
    ]


def test_departures_need_the_exact_spelab_value() -> None:
    cell = ps.Cell("music", "pop_piano", "ape", ())
    deps = [{"task": "pop_piano", "hyperparameter": "redraw", "spelab": 20, "reason": "r"}]
    assert ps.departure_for(deps, cell, "redraw", 20) == 0
    assert ps.departure_for(deps, cell, "redraw", 40) is None
    assert ps.departure_for(deps, ps.Cell("music", "groove", "ape", ()), "redraw", 20) is None


@pytest.mark.slow
@pytest.mark.parametrize("family", ps.FAMILIES)
def test_every_cell_matches_and_the_committed_table_is_current(family: str) -> None:
    rows = ps.compare(family)
    bad = _undocumented(rows)
    assert not bad, "\n".join(bad)
    assert len({r.cell for r in rows}) == len(ps.grid_cells(family))
    assert ps.table_path(family).read_text() == ps.render(family, rows), (
        f"{ps.table_path(family)} is stale: python -m spelab.paper_settings"
    )
    departures = ps.load_yaml(ps.ROOT / "experiments" / family / "departures.yaml") or []
    used = {r.departure for r in rows if r.departure is not None}
    assert used == set(range(len(departures))), "a departure no cell needs: remove it"
