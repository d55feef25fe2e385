"""Config helpers shared by the test modules (imported by name: `pythonpath = ["tests"]` in pyproject).

Hydra is imported only when a config is composed, so GPU-only test runs on machines without Hydra
still collect.
"""

from __future__ import annotations

from pathlib import Path

from spelab import registry

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"

# The options of conf/attention and conf/pos_enc (spelab.registry): the paper's (`# @paper true`, its
# 18-cell grid) and the others, kept apart so the paper's tests stay the paper's (tests/test_modern_grid.py)
ATTENTIONS = registry.names("attention", paper=True, dirs=(CONF,))
POS_ENCS = registry.names("pos_enc", paper=True, dirs=(CONF,))
MODERN_ATTENTIONS = registry.names("attention", paper=False, dirs=(CONF,))
MODERN_POS_ENCS = registry.names("pos_enc", paper=False, dirs=(CONF,))


def compose_config(overrides: list[str] | None = None, output_dir: Path | None = None, data_dir: Path | None = None):
    """The config `python run.py <overrides>` would see, with HydraConfig set so ${hydra:...} resolves.

    output_dir replaces the run dir Hydra would have created; data_dir the data cache root."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import open_dict

    from spelab.tracking import register_resolvers

    register_resolvers()
    GlobalHydra.instance().clear()
    with initialize_config_dir(version_base="1.3", config_dir=str(CONF)):
        cfg = compose("config", overrides=list(overrides or []), return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        del cfg["hydra"]  # as in run.py, where Hydra hands the job its config without the hydra node
        if output_dir is not None:
            cfg.paths.output_dir = str(output_dir)
        if data_dir is not None:
            cfg.paths.data_dir = str(data_dir)
    return cfg
