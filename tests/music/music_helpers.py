"""Helpers for the music tests: composed configs and tiny trained runs (no network)."""

from __future__ import annotations

from pathlib import Path

import pytest

CONF_DIR = Path(__file__).resolve().parents[2] / "conf"
SMOKE_PIECES = 8  # chorales in the smoke subset (6 train / 1 val / 1 test)


def compose(overrides: list[str], output_dir: Path | None = None):
    """The config `python run.py <overrides>` would see (${hydra:...} resolvable), without the hydra node."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import open_dict

    from spelab.tracking import register_resolvers

    register_resolvers()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = hydra_compose(config_name="config", overrides=overrides, return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        del cfg["hydra"]
        if output_dir is not None:
            cfg.paths.output_dir = str(output_dir)
    return cfg


def smoke_overrides(cache: Path, attention: str = "linear", pos_enc: str = "sinespe", length: int = 32) -> list[str]:
    return [
        "task=music",
        "debug=smoke",
        f"attention={attention}",
        f"pos_enc={pos_enc}",
        f"task.datamodule.max_pieces={SMOKE_PIECES}",
        f"task.datamodule.data_dir={cache}",
        f"task.datamodule.max_length={length}",
        f"model.max_len={4 * length + 8}",
        "model.pos_enc.num_realizations=8" if pos_enc in ("sinespe", "convspe") else "seed=0",
        "model.pos_enc.kernel_size=8" if pos_enc == "convspe" else "seed=0",
    ]


def train_run(run_dir: Path, overrides: list[str]) -> Path:
    """Train through spelab.train like run.py does (and save .hydra/config.yaml as Hydra would);
    returns the checkpoint evaluate/generate read."""
    from omegaconf import OmegaConf

    from spelab.train import train

    cfg = compose(overrides + ["logger=csv"], output_dir=run_dir)
    (run_dir / ".hydra").mkdir(parents=True, exist_ok=True)
    OmegaConf.save(cfg, run_dir / ".hydra" / "config.yaml")
    results = train(cfg)
    assert results["status"] == "done", results
    ckpts = run_dir / "checkpoints"
    return ckpts / "best.ckpt" if (ckpts / "best.ckpt").is_file() else ckpts / "last.ckpt"


def why_audio_unavailable(soundfont: str | None = None) -> str | None:
    """None when spelab.music.audio can render, else the reason (for test skips)."""
    from spelab.music.audio import AudioUnavailable, check

    try:
        check(soundfont)
    except AudioUnavailable as err:
        return str(err)
    return None


def needs_audio(test):
    """Skip without FluidSynth and a soundfont, saying why; with CI=true that skip is a failure
    (the `needs` marker, tests/ci_components.py; CI installs them with `make audio-deps`)."""
    reason = why_audio_unavailable()
    skip = pytest.mark.skipif(reason is not None, reason=f"FluidSynth unavailable: {reason}")
    return pytest.mark.needs("FluidSynth")(skip(test))
