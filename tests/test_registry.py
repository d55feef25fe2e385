"""spelab.registry: the conf/ groups' options, their `# @...` headers, and the grids kept explicit."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from cfg_utils import ATTENTIONS, CONF, POS_ENCS
from spelab import registry


@pytest.mark.parametrize("group", ["attention", "pos_enc"])
def test_every_option_is_a_file_with_a_distinct_order(group):
    opts = registry.options(group, dirs=(CONF,))
    assert {o.name for o in opts} == {p.stem for p in (CONF / group).glob("*.yaml")}
    orders = [o.meta.get("order") for o in opts]
    assert all(isinstance(x, int) for x in orders) and len(set(orders)) == len(orders), orders
    assert all(o.target and o.target.startswith("spelab.nn.") for o in opts)


def test_headers_are_read_as_hydra_reads_them():
    from hydra.plugins.config_source import ConfigSource

    text = (CONF / "pos_enc" / "rope.yaml").read_text()
    hydra_header = ConfigSource._get_header_dict(text)
    assert hydra_header["package"] == "model.pos_enc"
    assert {k: str(v).lower() for k, v in registry.read_header(text).items()} == {
        k: v for k, v in hydra_header.items() if k != "package"
    }
    assert registry.read_header("# @package _global_\n# @order 3\n# text\n# @paper true\nkey: 1\n") == {"order": 3}


@pytest.mark.parametrize("sweep", ["smoke", "cpu_grid", "lra_grid"])
def test_the_paper_grids_stay_the_papers_options(sweep):
    """The paper's grids list its options on purpose (a new option does not join them): exactly the
    `# @paper true` ones (lra_grid: the paper's LRA table, without rope)."""
    params = OmegaConf.load(CONF / "sweep" / f"{sweep}.yaml").hydra.sweeper.params
    atts, poss = str(params.attention).split(","), str(params.pos_enc).split(",")
    assert atts == list(ATTENTIONS) == ["softmax", "performer", "linear"]
    expected = [p for p in POS_ENCS if p != "rope"] if sweep == "lra_grid" else list(POS_ENCS)
    assert sorted(poss) == sorted(expected) and len(POS_ENCS) == 6


def test_the_report_orders_are_todays():
    assert registry.names("attention", dirs=(CONF,)) == ("softmax", "performer", "linear", "gla", "deltanet")
    assert registry.names("pos_enc", dirs=(CONF,)) == (
        *("none", "sinusoidal", "learned", "cape", "rope", "xpos", "rope2d"),
        *("sinespe", "convspe", "alibi", "kerple", "fire", "decay"),
    )
    assert registry.names("task", dirs=(CONF,)) == (
        *("listops", "text", "retrieval", "image", "pathfinder", "pathx", "music", "pop_piano", "groove"),
    )


def test_by_target_matches_the_class_name_too():
    assert registry.by_target("pos_enc", "spelab.nn.RotaryEmbedding", dirs=(CONF,)).name == "rope"
    assert registry.by_target("pos_enc", "x.LearnedPositionalEncoding", dirs=(CONF,)).name == "learned"
    assert registry.by_target("pos_enc", "x.Nothing", dirs=(CONF,)) is None
    assert registry.by_target("pos_enc", None, dirs=(CONF,)) is None
