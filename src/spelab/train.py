"""Orchestration: composed config -> DataModule + LightningModule + Trainer; fit, test on the best
checkpoint, and write results.json (also when the run fails).

`train(cfg)` is what run.py calls; tests call it in-process with a composed config.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import hydra.utils
import lightning.pytorch as pl
import torch
from lightning.pytorch.plugins.environments import SLURMEnvironment
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf

from spelab.compat import UnsupportedPairError
from spelab.nn.kernels import set_kernel_mode
from spelab.reliability import (
    AtomicCheckpointIO,
    ConfigStamp,
    FiniteLossGuard,
    check_checkpoint_compatible,
    check_output_dir,
    remove_stale_temp_files,
    save_run_metadata,
    wandb_metadata,
)
from spelab.reliability.output_dir import disk_error_as_output_dir_error
from spelab.reliability.ckpt_fallback import pick_resume_checkpoint
from spelab.reliability.resume_state import RngStateCallback
from spelab.reliability.run_lock import RunLock, RunLockedError
from spelab.reliability.signals import GracefulStop, describe_error, is_interruption
from spelab.tracking import build_loggers, finish_wandb, read_results, run_id, write_results
from spelab.console import quiet_output, say_resume, show_config
from spelab.early_data import prepare_early
from spelab.progress import setup_progress

log = logging.getLogger(__name__)


class StopAtStep(pl.Callback):
    """Fault injection (`fail_at_step=N`): raise once N optimizer steps are done, after the checkpoint
    callbacks of earlier steps ran, to test resuming."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer: pl.Trainer, *args: Any) -> None:
        if trainer.global_step >= self.step:
            raise RuntimeError(f"fail_at_step={self.step}: injected failure at step {trainer.global_step}")


def instantiate(node: Any, **kwargs: Any) -> Any:
    """hydra.utils.instantiate, but a constructor's own error (naming the key or the missing file)
    reaches the user as itself rather than wrapped in Hydra's InstantiationException."""
    from hydra.errors import InstantiationException

    try:
        return hydra.utils.instantiate(node, **kwargs)
    except InstantiationException as err:
        if err.__cause__ is not None:
            raise err.__cause__ from None
        raise


def _choice(cfg: DictConfig, group: str) -> str | None:
    """The option chosen for a config group (e.g. attention -> "performer"), when Hydra is running."""
    try:
        from hydra.core.hydra_config import HydraConfig

        return HydraConfig.get().runtime.choices.get(group)
    except Exception:  # not under Hydra (plain compose): fall back to the target class name
        node = cfg.model.get(group)
        return str(node._target_).rsplit(".", 1)[-1] if node is not None and "_target_" in node else None


def check_config(cfg: DictConfig) -> None:
    """Fail before any heavy work, naming the key and what is allowed."""
    from spelab.compat import check_pair
    from spelab.validation import validate_config

    check_pair(cfg)  # first: an impossible pair is recorded as unsupported, not failed
    validate_config(cfg)
    module = cfg.task.get("module")
    if not OmegaConf.is_dict(module) or "_target_" not in module:
        raise ValueError(
            "task.module._target_ is missing: a task's YAML names its LightningModule class, most simply by "
            "`defaults: [/module@task.module: classification, _self_]` (or lm; see conf/module/)"
        )
    m = cfg.model
    for key in ("d_model", "num_layers", "num_heads"):
        if not isinstance(m.get(key), int) or m.get(key) <= 0:
            raise ValueError(f"model.{key} must be a positive integer, got {m.get(key)!r}")
    if m.d_model % m.num_heads:
        raise ValueError(f"model.num_heads={m.num_heads} must divide model.d_model={m.d_model}")
    set_kernel_mode(cfg.get("kernels", "auto"))  # SPELAB_KERNELS for this process and its workers
    if cfg.get("test_ckpt", "best") not in ("best", "last"):
        raise ValueError(f"test_ckpt={cfg.test_ckpt!r} is not one of ['best', 'last']")


def resolve_precision(cfg: DictConfig) -> str | int:
    """precision=auto: bf16-mixed on a GPU that supports it, else fp32."""
    precision = cfg.trainer.get("precision", "auto")
    if precision != "auto":
        return precision
    gpu = torch.cuda.is_available() and cfg.trainer.get("accelerator", "auto") in ("auto", "gpu", "cuda")
    return "bf16-mixed" if gpu and torch.cuda.is_bf16_supported() else "32-true"


def build_module(cfg: DictConfig, dm: Any) -> pl.LightningModule:
    """The LightningModule as task.module states it (its backbone, optimizer and scheduler nested), with
    the facts only the datamodule knows."""
    node = OmegaConf.to_container(cfg.task.module, resolve=True)  # `model: ${model}` becomes the backbone's node
    facts = {"vocab_size": dm.vocab_size, "num_classes": dm.num_classes, "dual": dm.dual, "pad_id": dm.pad_id}
    return instantiate(node, model={"vocab_size": dm.vocab_size}, **facts)


def build_callbacks(cfg: DictConfig) -> list[pl.Callback]:
    callbacks = [
        hydra.utils.instantiate(c) for c in (cfg.get("callbacks") or {}).values() if c is not None and "_target_" in c
    ]
    if cfg.get("fail_at_step"):
        callbacks.append(StopAtStep(int(cfg.fail_at_step)))
    return callbacks


def _metrics(trainer: pl.Trainer) -> dict[str, float]:
    return {k: float(v) for k, v in trainer.callback_metrics.items() if k.split("/")[0] in ("train", "val", "test")}


def _best_checkpoint(callbacks: list[pl.Callback]) -> str | None:
    for cb in callbacks:
        if isinstance(cb, pl.callbacks.ModelCheckpoint) and cb.monitor and cb.best_model_path:
            if Path(cb.best_model_path).is_file():
                return cb.best_model_path
    return None


def train(cfg: DictConfig) -> dict[str, Any]:
    """Run one configuration end to end; returns the results.json content."""
    start = time.time()
    quiet_output()
    output_dir = Path(cfg.paths.output_dir).resolve()
    prior = read_results(output_dir)
    if prior and prior.get("status") == "done" and not cfg.get("force", False):
        if (output_dir / "checkpoints" / "last.ckpt").is_file():  # never report another config's results
            check_checkpoint_compatible(output_dir / "checkpoints" / "last.ckpt", cfg)
        print(
            f"[spelab] already done, skipping: {output_dir / 'results.json'} "
            f"({_summary(prior.get('metrics', {}))}). Add force=true to run it again."
        )
        return prior
    results: dict[str, Any] = {
        "status": "failed",
        "task": cfg.task.get("name"),
        "attention": _choice(cfg, "attention"),
        "pos_enc": _choice(cfg, "pos_enc"),
        "seed": cfg.get("seed"),
        "sweep_name": cfg.get("sweep_name"),
        "metrics": {},
        "params": None,
        "wall_time_s": None,
        "output_dir": str(output_dir),
        "error": None,
    }
    loggers: list = []
    failed = True
    lock = RunLock(output_dir, wait=bool(cfg.get("lock_wait", False)))
    locked_out, callbacks = False, []
    try:
        check_config(cfg)
        check_output_dir(output_dir)  # writable, with free space, before any heavy work
        if rank_zero_only.rank == 0:  # one launch per run dir; DDP ranks share rank 0's
            lock.acquire()
        fresh = bool(cfg.get("force", False)) and prior is not None
        last = output_dir / "checkpoints" / "last.ckpt"
        remove_stale_temp_files(last.parent)  # left by a process killed while saving
        resume_from = pick_resume_checkpoint(last) if cfg.get("resume", True) and not fresh else None
        ckpt_path = str(resume_from) if resume_from else None
        if ckpt_path:
            check_checkpoint_compatible(ckpt_path, cfg)  # refuses another configuration's checkpoint
        meta = save_run_metadata(output_dir, cfg)  # after the check: it reads the previous run_meta.json
        show_config(cfg, output_dir)
        pl.seed_everything(cfg.seed, workers=True)
        if torch.cuda.is_available():
            torch.set_float32_matmul_precision("high")
        dm = instantiate(cfg.task.datamodule)
        prepare_early(dm)  # a missing data dir fails here, before a W&B run exists
        results["data"] = dm.info()
        module = build_module(cfg, dm)
        results["params"] = module.num_parameters()
        callbacks = build_callbacks(cfg) + [
            FiniteLossGuard(),
            ConfigStamp(cfg),
            RngStateCallback(),
            GracefulStop(last, output_dir, cfg.get("pause_at_steps")),
        ]
        callbacks, progress_kwargs = setup_progress(callbacks, cfg)  # a bar on a terminal, lines elsewhere
        wandb_id = run_id(output_dir) + (f"-{int(start)}" if fresh else "")
        loggers = build_loggers(cfg, output_dir, wandb_id)
        hparams = OmegaConf.to_container(cfg, resolve=True)
        hparams.update(
            {
                "cell/task": results["task"],
                "cell/attention": results["attention"],
                "cell/pos_enc": results["pos_enc"],
                "model/params/total": results["params"],
            }
        )
        for logger in loggers:
            if type(logger).__name__ != "WandbLogger":  # W&B got the config at start-up
                logger.log_hyperparams(hparams)
            else:  # flat cell keys too, so W&B tables pivot without parsing nested config
                cell = {k: v for k, v in hparams.items() if k.startswith(("cell/", "model/params"))}
                logger.experiment.config.update({**wandb_metadata(meta), **cell}, allow_val_change=True)
        plugins: list = [AtomicCheckpointIO()]
        if SLURMEnvironment.detect():  # submitit owns requeueing; Lightning's own would fight it
            plugins.append(SLURMEnvironment(auto_requeue=False))
        trainer: pl.Trainer = hydra.utils.instantiate(
            cfg.trainer,
            callbacks=callbacks,
            logger=loggers or False,
            precision=resolve_precision(cfg),
            plugins=plugins,
            **progress_kwargs,
        )
        say_resume(ckpt_path, last)
        trainer.fit(module, datamodule=dm, ckpt_path=ckpt_path)
        if trainer.interrupted:
            raise KeyboardInterrupt("training was interrupted")
        if not trainer.fast_dev_run:
            trainer.save_checkpoint(last)  # the final state, whatever the checkpoint cadence
        metrics = _metrics(trainer)
        best = _best_checkpoint(callbacks) if cfg.get("test_ckpt", "best") == "best" else None
        test_out = (
            trainer.test(module, datamodule=dm, ckpt_path=best, weights_only=False)
            if best
            else trainer.test(module, datamodule=dm)
        )
        metrics.update({k: float(v) for k, v in (test_out[0] if test_out else {}).items()})
        metrics["global_step"] = int(trainer.global_step)
        results["metrics"] = metrics
        results["data"] = dm.info()  # again: readers count skipped records while loading
        results["test_ckpt"] = best or "last"
        results["status"] = "done"
        failed = False
    except BaseException as err:
        locked_out = isinstance(err, RunLockedError)  # the run dir is another process's: write nothing there
        clear = disk_error_as_output_dir_error(err, output_dir) if isinstance(err, Exception) else None
        results["error"] = describe_error(clear or err)
        if is_interruption(err):  # a signal or Ctrl-C, not a fault of the run: rerun to resume
            results["status"] = "interrupted"
            stopped = next((c.stopped for c in callbacks if getattr(c, "stopped", None)), None)
            results["error"] = describe_error(stopped or err)
        elif isinstance(err, UnsupportedPairError):
            results["status"] = "unsupported"
        if clear is not None and clear is not err:  # ENOSPC/EROFS deep in a library -> one clear error
            raise clear from err
        raise
    finally:
        results["wall_time_s"] = round(time.time() - start, 3)
        write_error = None
        try:
            if rank_zero_only.rank == 0 and not locked_out:  # one results.json per run, also under DDP
                write_results(output_dir, results)
        except OSError as err:  # unwritable/full output dir: the error raised above already says so
            log.error("could not write %s: %s", output_dir / "results.json", err)
            write_error = err
        lock.release()
        finish_wandb(loggers, failed)
        if write_error is not None and not failed:  # finished, but the record is not on disk: fail, saying why
            raise disk_error_as_output_dir_error(write_error, output_dir) or write_error
    if rank_zero_only.rank == 0:
        print(
            f"[spelab] {results['task']} {results['attention']}-{results['pos_enc']} seed {results['seed']}: "
            f"{_summary(results['metrics'])}; results in {output_dir / 'results.json'}"
        )
    return results


def _summary(metrics: dict) -> str:
    keys = [k for k in ("test/acc", "test/loss", "test/nll", "val/acc_best") if k in metrics]
    return ", ".join(f"{k}={metrics[k]:.4f}" for k in keys) or "no metrics"
