"""spelab entry point: `python run.py [overrides]` (see conf/README.md and README.md)."""

import os
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

    from spelab.errors import SpelabError

    try:
        results = train(cfg)
    except SpelabError as err:  # the message is the whole story; HYDRA_FULL_ERROR=1 shows the traceback
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        from spelab.compat import UnsupportedPairError

        if isinstance(err, UnsupportedPairError) and HydraConfig.get().mode != RunMode.RUN:
            print(f"[spelab] unsupported cell, skipped: {err}", file=sys.stderr)
            return None  # results.json says status: unsupported; the sweep goes on
        if os.environ.get("HYDRA_FULL_ERROR") == "1" or HydraConfig.get().mode != RunMode.RUN:
            raise  # in a sweep, the other cells go on; this one's results.json holds the error
        print(f"Error: {type(err).__name__}: {err}", file=sys.stderr)
        sys.exit(1)
    metric = results.get("metrics", {}).get(cfg.task.monitor)
    return metric  # for sweepers that optimise the monitored metric


def _preflight() -> None:
    """Compose and check the command line before Hydra creates anything (spelab.preflight)."""
    if os.environ.get("SPELAB_NO_PREFLIGHT") == "1":
        return
    from hydra.errors import ConfigCompositionException

    from spelab.errors import SpelabError
    from spelab.preflight import DryRun, preflight

    try:
        preflight(sys.argv[1:], Path(__file__).resolve().parent / "conf")
    except DryRun as run_dir:
        print(f"run dir: {run_dir}")
        sys.exit(0)
    except (SpelabError, ConfigCompositionException) as err:
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        print(f"Error: {err}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    _preflight()
    main()
