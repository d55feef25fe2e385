"""What a run directory must record to reproduce the run: the resolved config, the versions of the
key packages, the git commit (and whether the tree had uncommitted changes), Python/torch/CUDA, the
command line. Saved as `run_meta.json` (the latest start) plus one line per start in
`run_meta.jsonl` (so resumed runs show every start), and returned as a dict for W&B's config."""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import socket
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

META_FILE = "run_meta.json"
HISTORY_FILE = "run_meta.jsonl"
CONFIG_FILE = "config_resolved.yaml"
KEY_PACKAGES = (
    "spelab",
    "torch",
    "lightning",
    "torchmetrics",
    "hydra-core",
    "omegaconf",
    "wandb",
    "numpy",
    "datasets",
    "einops",
    "hydra-submitit-launcher",
    "submitit",
    "miditok",
    "symusic",
    "pillow",
)
ENV_KEYS = (
    "CUDA_VISIBLE_DEVICES",
    "SLURM_JOB_ID",
    "SLURM_ARRAY_JOB_ID",
    "SLURM_ARRAY_TASK_ID",
    "WANDB_MODE",
    "OMP_NUM_THREADS",
    "CUBLAS_WORKSPACE_CONFIG",
    "PYTHONHASHSEED",
    "HF_DATASETS_OFFLINE",
)


def package_versions(names: tuple[str, ...] = KEY_PACKAGES) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    if out.get("spelab") is None:  # running from a checkout without `pip install -e .`
        try:
            import spelab

            out["spelab"] = getattr(spelab, "__version__", None)
        except ImportError:
            pass
    return out


def _git(args: list[str], cwd: Path) -> str | None:
    try:
        res = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return res.stdout.strip() if res.returncode == 0 else None


def git_info(start: str | os.PathLike | None = None) -> dict[str, Any]:
    """Commit, dirty flag (uncommitted changes to tracked files) and branch of the repo holding `start`
    (default: the spelab source tree). All None outside a git checkout."""
    if start is None:
        start = Path(__file__).resolve().parent
    cwd = Path(start)
    root = _git(["rev-parse", "--show-toplevel"], cwd)
    if root is None:
        return {"commit": None, "dirty": None, "branch": None, "root": None}
    status = _git(["status", "--porcelain", "--untracked-files=no"], cwd)
    return {
        "commit": _git(["rev-parse", "HEAD"], cwd),
        "dirty": bool(status) if status is not None else None,
        "branch": _git(["rev-parse", "--abbrev-ref", "HEAD"], cwd),
        "root": root,
    }


def torch_info() -> dict[str, Any]:
    try:
        import torch
    except ImportError:  # pragma: no cover
        return {}
    info: dict[str, Any] = {
        "version": torch.__version__,
        "cuda_available": torch.cuda.is_available(),
        "cuda_version": torch.version.cuda,
        "cudnn": None,
        "devices": [],
        "num_threads": torch.get_num_threads(),
    }
    if torch.cuda.is_available():
        info["cudnn"] = torch.backends.cudnn.version()
        info["devices"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return info


def _resolved(cfg: Any) -> Any:
    try:
        from omegaconf import DictConfig, ListConfig, OmegaConf
    except ImportError:  # pragma: no cover
        return cfg
    if isinstance(cfg, (DictConfig, ListConfig)):
        try:
            return OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False)
        except Exception:
            return OmegaConf.to_container(cfg, resolve=False)
    return cfg


def collect_run_metadata(cfg: Any = None, argv: list[str] | None = None) -> dict[str, Any]:
    """Everything needed to reproduce the run, as a JSON-able dict."""
    return {
        "time_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "command": [sys.executable, *(sys.argv if argv is None else argv)],
        "cwd": os.getcwd(),
        "host": socket.gethostname(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": package_versions(),
        "git": git_info(),
        "torch": torch_info(),
        "env": {k: os.environ[k] for k in ENV_KEYS if k in os.environ},
        "config": _resolved(cfg) if cfg is not None else None,
    }


def save_run_metadata(output_dir: str | os.PathLike, cfg: Any = None, argv: list[str] | None = None) -> dict[str, Any]:
    """Write run_meta.json (+ a line in run_meta.jsonl, + config_resolved.yaml) and return the dict."""
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    meta = collect_run_metadata(cfg, argv)
    text = json.dumps(meta, indent=2, sort_keys=True, default=str)
    tmp = out / f".tmp-{META_FILE}.{os.getpid()}"
    tmp.write_text(text + "\n")
    os.replace(tmp, out / META_FILE)
    with open(out / HISTORY_FILE, "a") as f:
        f.write(json.dumps(meta, sort_keys=True, default=str) + "\n")
    if meta["config"] is not None:
        try:
            from omegaconf import OmegaConf

            (out / CONFIG_FILE).write_text(OmegaConf.to_yaml(OmegaConf.create(meta["config"])))
        except Exception:  # the JSON copy above is the record; the YAML is a convenience
            pass
    return meta


def wandb_metadata(meta: dict[str, Any]) -> dict[str, Any]:
    """The metadata minus the config (W&B gets the config separately), under a `run_meta` key."""
    return {"run_meta": {k: v for k, v in meta.items() if k != "config"}}
