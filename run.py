"""spelab entry point: `python run.py [overrides]` (see conf/README.md and README.md)."""

import sys
from pathlib import Path

_SRC = Path(__file__).resolve().parent / "src"
if _SRC.is_dir() and str(_SRC) not in sys.path:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, str(_SRC))

import hydra  # noqa: E402
from omegaconf import DictConfig  # noqa: E402

from spelab.tracking import register_resolvers  # noqa: E402

register_resolvers()


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> float | None:
    if cfg.get("dry_run"):  # show where this configuration's run dir is, and do nothing else
        print(f"run dir: {cfg.paths.output_dir}")
        return None
    from spelab.train import train  # heavy imports only once the config is valid

    results = train(cfg)
    metric = results.get("metrics", {}).get(cfg.task.monitor)
    return metric  # for sweepers that optimise the monitored metric


if __name__ == "__main__":
    main()
