"""Helpers for the music tests: composed configs and tiny trained runs (no network)."""

from __future__ import annotations

from pathlib import Path

CONF_DIR = Path(__file__).resolve().parents[2] / "conf"
SMOKE_PIECES = 8  # chorales in the smoke subset (6 train / 1 val / 1 test)


def compose(overrides: list[str]):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    from spelab.tracking import register_resolvers

    register_resolvers()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return hydra_compose(config_name="config", overrides=overrides, return_hydra_config=False)


def smoke_overrides(cache: Path, attention: str = "linear", pos_enc: str = "sinespe", length: int = 32) -> list[str]:
    return [
        "task=music", "debug=smoke", f"attention={attention}", f"pos_enc={pos_enc}",
        f"task.datamodule.max_pieces={SMOKE_PIECES}", f"task.datamodule.data_dir={cache}",
        f"task.datamodule.max_length={length}", f"model.max_len={4 * length + 8}",
        "model.pos_enc.num_realizations=8" if pos_enc in ("sinespe", "convspe") else "seed=0",
        "model.pos_enc.kernel_size=8" if pos_enc == "convspe" else "seed=0",
    ]


def train_run(run_dir: Path, overrides: list[str], steps: int = 4) -> Path:
    """Train a smoke model as a run directory (`.hydra/config.yaml` + `checkpoints/best.ckpt`)."""
    import lightning.pytorch as pl
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    from spelab.tasks.language_model import LanguageModelTask

    cfg = compose(overrides)
    (run_dir / ".hydra").mkdir(parents=True, exist_ok=True)
    OmegaConf.save(cfg, run_dir / ".hydra" / "config.yaml")
    pl.seed_everything(0, verbose=False)
    dm = instantiate(cfg.task.datamodule)
    module_args = {k: v for k, v in OmegaConf.to_container(cfg.task.module, resolve=True).items() if k != "_target_"}
    task = LanguageModelTask(model=cfg.model, vocab_size=dm.vocab_size, **module_args)
    trainer = pl.Trainer(max_steps=steps, accelerator="cpu", logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, limit_val_batches=2,
                         val_check_interval=min(steps, 2), check_val_every_n_epoch=None)
    trainer.fit(task, dm)
    ckpt = run_dir / "checkpoints" / "best.ckpt"
    trainer.save_checkpoint(ckpt)
    return ckpt
