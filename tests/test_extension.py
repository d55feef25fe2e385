"""A new backend or scheme is one module file plus one YAML, and nothing else.

A throw-away backend and scheme (a tiny nn.Module each, in a tmp dir on sys.path) with one YAML each
(in a tmp conf dir on Hydra's search path), with no other edit: compose and train on debug=smoke, join
a `-m` sweep over `glob(*)`, the allowed options that a bad option's error lists, the validation rules
their YAML header declares, spelab.report's order and the W&B tags.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from cfg_utils import CONF, ROOT, compose_config

MODULE = "scratch_ext"
CODE = '''
"""Throw-away extension for tests/test_extension.py."""
import torch
from torch import nn


class ScratchAttention(nn.Module):
    """Uniform attention: each query averages the values of the keys it may see."""

    name = "scratchatt"  # its conf/attention option (spelab.compat)

    def __init__(self, key_dim: int, scale: float = 1.0) -> None:
        super().__init__()
        self.key_dim, self.scale = key_dim, scale

    def forward(self, q, k, v, causal=False, key_padding_mask=None):
        n = q.shape[1]
        w = torch.ones(q.shape[0], n, n, dtype=v.dtype, device=v.device)
        if key_padding_mask is not None:
            w = w.masked_fill(key_padding_mask[:, None, :], 0.0)
        if causal:
            w = torch.tril(w)
        w = w / w.sum(-1, keepdim=True).clamp_min(1.0)
        return self.scale * torch.einsum("bnm,bmhd->bnhd", w, v)


class ScratchPosition(nn.Module):
    """A learned table of max_len positions added to the embeddings."""

    is_relative = False

    def __init__(self, d_model: int, max_len: int = 2048, init_std: float = 0.02) -> None:
        super().__init__()
        self.d_model, self.max_len = d_model, max_len
        self.table = nn.Parameter(init_std * torch.randn(max_len, d_model))

    def forward(self, x, offset=0):
        return x + self.table[offset : offset + x.shape[1]]
'''
BACKEND_YAML = """\
# @package model.attention
# @order 25
# Throw-away backend: uniform attention (between performer and linear in reports).
_target_: scratch_ext.ScratchAttention
_partial_: true
scale: 1.0
"""
SCHEME_YAML = """\
# @package model.pos_enc
# @order 5
# @absolute_table true
# Throw-away scheme: a learned table (first in reports).
_target_: scratch_ext.ScratchPosition
_partial_: true
init_std: 0.02
"""


@pytest.fixture
def ext(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """(conf dir, module dir, the search-path override) of the throw-away backend and scheme."""
    code_dir, conf_dir = tmp_path / "ext", tmp_path / "extconf"
    code_dir.mkdir()
    (code_dir / f"{MODULE}.py").write_text(textwrap.dedent(CODE))
    for group, name, text in (("attention", "scratchatt", BACKEND_YAML), ("pos_enc", "scratchpos", SCHEME_YAML)):
        (conf_dir / group).mkdir(parents=True)
        (conf_dir / group / f"{name}.yaml").write_text(text)
    monkeypatch.syspath_prepend(str(code_dir))
    yield conf_dir, code_dir, f"hydra.searchpath=[file://{conf_dir}]"
    sys.modules.pop(MODULE, None)
    from hydra.core.hydra_config import HydraConfig

    HydraConfig.instance().cfg = None  # later tests see conf/ alone again


def test_scratch_backend_and_scheme_train_and_join_every_list(ext, tmp_path, data_dir):
    from spelab import registry
    from spelab.train import train

    conf_dir, _, search = ext
    cell = [search, "attention=scratchatt", "pos_enc=scratchpos", "debug=smoke"]
    cfg = compose_config([*cell, "logger=csv"], output_dir=tmp_path / "run", data_dir=data_dir)
    res = train(cfg)
    assert res["status"] == "done", res.get("error")
    assert (res["attention"], res["pos_enc"]) == ("scratchatt", "scratchpos")
    assert res["metrics"]["global_step"] == cfg.trainer.max_steps

    # the registry: in order, by their `# @order` headers
    assert registry.names("attention") == ("softmax", "performer", "scratchatt", "linear", "gla", "deltanet")
    assert registry.names("pos_enc")[:2] == ("scratchpos", "none")
    assert registry.names("pos_enc", paper=True) == registry.names("pos_enc", paper=True, dirs=(CONF,))

    # W&B tags (conf/logger/wandb.yaml takes them from Hydra's choices)
    tags = OmegaConf.to_container(compose_config([*cell, "logger=wandb"]).logger.wandb.tags, resolve=True)
    assert "scratchatt" in tags and "scratchpos" in tags

    # validation: the rule the scheme's header declares (an absolute table of max_len positions)
    from spelab.validation import find_problems

    (problem,) = find_problems(compose_config([*cell, "model.max_len=8"]))
    assert problem.key == "model.max_len" and "pos_enc=scratchpos" in str(problem)

    # spelab.report orders them by their headers too
    from spelab.report import load_runs, summarize, to_markdown

    sweep = tmp_path / "sweep"
    for att in ("linear", "scratchatt", "softmax"):
        for pos in ("rope", "none", "scratchpos"):
            d = sweep / "listops" / f"{att}-{pos}" / "seed0"
            d.mkdir(parents=True)
            d.joinpath("results.json").write_text(
                json.dumps(
                    {"status": "done", "task": "listops", "attention": att, "pos_enc": pos, "seed": 0}
                    | {"metrics": {"test/acc": 0.5}}
                )
            )
    runs = load_runs([sweep])
    md = to_markdown(summarize(runs), runs)
    assert "| attention \\ pos_enc | scratchpos | none | rope |" in md
    assert md.index("| softmax |") < md.index("| scratchatt |") < md.index("| linear |")


def test_a_bad_option_lists_the_scratch_ones(ext):
    from hydra.errors import ConfigCompositionException

    from spelab.preflight import preflight

    *_, search = ext
    for group, name in (("attention", "scratchatt"), ("pos_enc", "scratchpos")):
        with pytest.raises(ConfigCompositionException) as err:
            preflight([search, f"{group}=nosuch"], CONF)
        assert f"Available options in '{group}'" in str(err.value) and name in str(err.value)


def _dry_sweep(conf_dir: Path, code_dir: Path, tmp_path: Path, env: dict, *overrides: str) -> set[str]:
    """The `<attention>-<pos_enc>` cells `run.py -m` launches (dry_run: each job only prints its run dir).
    Hydra's sweeper globs over the primary search path, which `--config-dir` extends and
    `hydra.searchpath` does not."""
    env["PYTHONPATH"] = f"{code_dir}:{env['PYTHONPATH']}"
    cmd = [sys.executable, str(ROOT / "run.py"), "-m", "--config-dir", str(conf_dir), *overrides, "dry_run=true"]
    out = subprocess.run(
        [*cmd, f"paths.root_dir={tmp_path}"], capture_output=True, text=True, cwd=ROOT, env=env, timeout=600
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return {ln.split("/")[-2] for ln in out.stdout.splitlines() if ln.startswith("run dir: ")}


@pytest.mark.slow
def test_the_modern_grid_sweeps_the_scratch_backend(ext, tmp_path, subprocess_env):
    """`run.py -m +sweep=modern_grid` sweeps `attention: glob(*)`: the new backend joins with no edit."""
    conf_dir, code_dir, _ = ext
    overrides = ("+sweep=modern_grid", "experiment=lra/listops", "seed=0", "pos_enc=glob(sc*)")
    cells = _dry_sweep(conf_dir, code_dir, tmp_path, subprocess_env, *overrides)
    assert cells == {f"{a}-scratchpos" for a in ("softmax", "performer", "linear", "gla", "deltanet", "scratchatt")}


def test_the_sweep_files_globs_take_the_scratch_options(ext):
    """The modern grid's `glob(...)` over the groups, as Hydra's sweeper applies it to their options."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from spelab import registry

    conf_dir, _, _ = ext
    params = OmegaConf.load(CONF / "sweep" / "modern_grid.yaml").hydra.sweeper.params
    parser = OverridesParser.create()
    for group, name in (("attention", "scratchatt"), ("pos_enc", "scratchpos")):
        chosen = (
            parser.parse_override(f"{group}={params[group]}")
            .value()
            .filter(list(registry.names(group, dirs=(CONF, conf_dir))))
        )
        assert name in chosen and set(chosen) >= set(registry.names(group, paper=False, dirs=(CONF,))) - {"rope2d"}
