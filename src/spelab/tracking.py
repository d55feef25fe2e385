"""Run bookkeeping: deterministic run dirs and W&B ids, loggers (CSV always, W&B offline by default),
and results.json. Heavy imports (lightning, wandb) stay inside the functions that need them."""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

log = logging.getLogger(__name__)

RESULTS_FILE = "results.json"


def cfg_hash(overrides: str) -> str:
    """'' for no overrides, else '-' + 8 hex digits of the (Hydra-sorted) override string.

    Used in hydra.run.dir / hydra.sweep.subdir so that different configurations never share a dir while
    the same command always maps to the same one."""
    if not overrides:
        return ""
    return "-" + hashlib.sha1(overrides.encode()).hexdigest()[:8]


def register_resolvers() -> None:
    """Register the OmegaConf resolvers the configs use (idempotent)."""
    if not OmegaConf.has_resolver("cfg_hash"):
        OmegaConf.register_new_resolver("cfg_hash", lambda s="": cfg_hash(str(s)))


def run_id(output_dir: str | Path) -> str:
    """A W&B run id that is the same for every rerun in the same run dir (so W&B resumes the run)."""
    return hashlib.sha1(str(Path(output_dir).resolve()).encode()).hexdigest()[:16]


def read_results(output_dir: str | Path) -> dict | None:
    path = Path(output_dir) / RESULTS_FILE
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def write_results(output_dir: str | Path, results: dict[str, Any]) -> Path:
    """Write results.json atomically (a reader never sees half a file)."""
    path = Path(output_dir) / RESULTS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    try:  # a full disk leaves the previous results.json as it was, and no half-written temp file
        tmp.write_text(json.dumps(results, indent=2, sort_keys=True, default=_jsonable) + "\n")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def _jsonable(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    return str(value)


def build_loggers(cfg: DictConfig, output_dir: Path, run_name_id: str | None = None) -> list:
    """Instantiate every logger in cfg.logger. W&B gets a deterministic id and resume='allow'; if it
    cannot start, the run goes on with the others and a warning says so."""
    import hydra.utils

    loggers = []
    for name, lcfg in (cfg.get("logger") or {}).items():
        if lcfg is None or "_target_" not in lcfg:
            continue
        if name == "wandb" or "WandbLogger" in str(lcfg._target_):
            logger = _build_wandb(cfg, lcfg, output_dir, run_name_id)
            if logger is not None:
                loggers.append(logger)
            continue
        loggers.append(hydra.utils.instantiate(lcfg))
    return loggers


def _build_wandb(cfg: DictConfig, lcfg: DictConfig, output_dir: Path, rid: str | None):
    import hydra.utils

    offline = bool(lcfg.get("offline", True)) and not bool(cfg.get("wandb_online", False))
    if not offline:
        unreachable = _wandb_server_unreachable(float(lcfg.get("init_timeout") or 30))
        if unreachable:  # W&B would retry for minutes; log offline instead (make sync-wandb uploads later)
            log.warning(
                "W&B server unreachable (%s): logging offline to %s/wandb; upload later with `make sync-wandb`",
                unreachable,
                output_dir,
            )
            offline = True
    try:
        tags = [str(t) for t in list(lcfg.get("tags") or []) + list(cfg.get("tags") or [])]
        lcfg = OmegaConf.to_container(lcfg, resolve=True)
        timeout = lcfg.pop("init_timeout", None)  # not a logger argument: a wandb.init setting
        if timeout is not None:
            settings = dict(lcfg.pop("settings", None) or {})
            settings.setdefault("init_timeout", float(timeout))
            lcfg["settings"] = settings
        logger = hydra.utils.instantiate(
            lcfg, offline=offline, id=rid or run_id(output_dir), tags=list(dict.fromkeys(tags))
        )
        from spelab.console import drop_unset_wandb_settings

        drop_unset_wandb_settings(logger)  # before the run starts: W&B warns about unset settings
        experiment = logger.experiment  # starts the run now, so a failure surfaces here
        experiment.config.update(OmegaConf.to_container(cfg, resolve=True), allow_val_change=True)
        for key, summary in (("val/acc", "max"), ("val/loss", "min"), ("val/acc_best", "max")):
            experiment.define_metric(key, summary=summary)
        experiment.define_metric("test/*", summary="last")
        return logger
    except Exception as err:  # W&B is optional: never lose a run because of it
        log.warning(
            "W&B logging disabled (%s: %s); metrics still go to the CSV logger and results.json",
            type(err).__name__,
            err,
        )
        return None


def _wandb_server_unreachable(timeout: float) -> str | None:
    """Why the W&B server (WANDB_BASE_URL, default api.wandb.ai) cannot be reached by TCP within
    `timeout` seconds, or None when it can."""
    import socket
    from urllib.parse import urlparse

    url = urlparse(os.environ.get("WANDB_BASE_URL") or "https://api.wandb.ai")
    host = url.hostname or "api.wandb.ai"
    port = url.port or (80 if url.scheme == "http" else 443)
    try:
        with socket.create_connection((host, port), timeout=min(timeout, 10.0)):
            return None
    except OSError as err:
        return f"{host}:{port}: {err}"


def finish_wandb(loggers: list, failed: bool) -> None:
    """Close the W&B run (exit code 1 when the run failed); safe when W&B never started."""
    for logger in loggers:
        if type(logger).__name__ == "WandbLogger":
            try:
                import wandb

                if wandb.run is not None:
                    wandb.finish(exit_code=1 if failed else 0)
            except Exception as err:  # pragma: no cover - best effort on shutdown
                log.warning("wandb.finish failed: %s", err)
