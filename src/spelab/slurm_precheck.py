"""What can be checked on a SLURM cluster before a sweep is submitted, so a mismatch ends with one
line naming the key to change instead of sbatch's error deep inside submitit:

* the partition exists (`hydra.launcher.partition`, env SLURM_PARTITION);
* a cell asking for GPUs (`gpus_per_node`, `gpus_per_task`, `gres`) goes to a partition whose nodes have
  GPU GRES, and not more per node than they have (else: `hydra/launcher=slurm_cpu`);
* the array fits the cluster's `MaxArraySize`: returns the largest array to submit (the launcher splits a
  larger grid into several arrays). Env SPELAB_SLURM_MAX_ARRAY_SIZE lowers it (tests, or a site whose
  limit is lower than its config says, e.g. MaxSubmitJobs).

The parsing functions take `scontrol ... -o` text, so they are tested without a cluster.
"""

from __future__ import annotations

import os
import re
import subprocess
from typing import Any, Mapping

from spelab.errors import SpelabError

MAX_ARRAY_ENV = "SPELAB_SLURM_MAX_ARRAY_SIZE"


class SlurmPrecheckError(SpelabError, ValueError):
    """The launcher's settings do not fit this cluster; the message names the key to change."""


def parse_records(text: str) -> list[dict[str, str]]:
    """`scontrol show <thing> -o` (one record per line of Key=Value words) -> list of dicts."""
    records = []
    for line in text.splitlines():
        rec = dict(m.groups() for m in re.finditer(r"(\w+)=(\S*)", line))
        if rec:
            records.append(rec)
    return records


def parse_config(text: str) -> dict[str, str]:
    """`scontrol show config` (Key = Value lines) -> dict."""
    out = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip() and " " not in key.strip():
            out[key.strip()] = value.strip()
    return out


def node_gpus(gres: str) -> int:
    """GPUs in a node's Gres string: 'gpu:4', 'gpu:a100:2(S:0-1),shard:8', '(null)' -> 4, 2, 0."""
    total = 0
    for item in gres.split(","):
        parts = item.split("(")[0].split(":")
        if parts[0] == "gpu":
            count = parts[-1] if len(parts) > 1 else "1"
            total += int(count) if count.isdigit() else 1
    return total


def requested_gpus(params: Mapping[str, Any]) -> int:
    """GPUs per node a launcher config asks for (0: none)."""
    n = 0
    for key in ("gpus_per_node", "gpus_per_task"):
        value = params.get(key)
        if value:
            n = max(n, int(str(value).split(":")[-1]) if str(value).split(":")[-1].isdigit() else 1)
    gres = params.get("gres") or (params.get("additional_parameters") or {}).get("gres")
    if gres:
        n = max(n, node_gpus(str(gres)) or 0)
    return n


def check(
    params: Mapping[str, Any],
    partitions: list[dict[str, str]],
    nodes: list[dict[str, str]],
    config: Mapping[str, str],
    env: Mapping[str, str] | None = None,
) -> int:
    """Raise SlurmPrecheckError naming the key to change; else return the largest array to submit."""
    env = os.environ if env is None else env
    names = [p.get("PartitionName") for p in partitions]
    wanted = params.get("partition")
    if wanted:
        part = next((p for p in partitions if p.get("PartitionName") == wanted), None)
        if part is None:
            raise SlurmPrecheckError(
                f"hydra.launcher.partition={wanted!r}: no such partition on this cluster "
                f"(it has: {', '.join(map(str, names)) or 'none'}); set "
                f"hydra.launcher.partition=<one of them> or env SLURM_PARTITION"
            )
    else:
        part = next((p for p in partitions if p.get("Default") == "YES"), None)
    gpus = requested_gpus(params)
    if gpus and part is not None:
        members = _expand(part.get("Nodes", ""))
        have = max((node_gpus(n.get("Gres", "")) for n in nodes if n.get("NodeName") in members), default=0)
        pname = part.get("PartitionName")
        if have == 0:
            raise SlurmPrecheckError(
                f"hydra.launcher.gpus_per_node={params.get('gpus_per_node')!r} asks for GPUs but partition "
                f"{pname!r} has none (no gpu GRES on its nodes); use hydra/launcher=slurm_cpu, or a GPU "
                f"partition with hydra.launcher.partition=..."
            )
        if gpus > have:
            raise SlurmPrecheckError(
                f"hydra.launcher.gpus_per_node={gpus} but the nodes of partition {pname!r} "
                f"have at most {have} GPUs; lower hydra.launcher.gpus_per_node (and "
                f"trainer.devices)"
            )
    limit = int(config.get("MaxArraySize", "1001") or 1001)
    if env.get(MAX_ARRAY_ENV):
        limit = min(limit, int(env[MAX_ARRAY_ENV]))
    return max(limit, 1)


def _expand(nodelist: str) -> set[str]:
    """SLURM host list 'vm,gpu[01-03,07]' -> names (enough for the node names partitions use)."""
    out: set[str] = set()
    for prefix, body, plain in re.findall(r"([^,\[]+)\[([^\]]*)\]|([^,]+)", nodelist):
        if plain:
            out.add(plain)
            continue
        for rng in body.split(","):
            lo, _, hi = rng.partition("-")
            for i in range(int(lo), int(hi or lo) + 1):
                out.add(f"{prefix}{i:0{len(lo)}d}")
    return out


def _scontrol(*args: str) -> str | None:
    try:
        res = subprocess.run(["scontrol", *args], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return None
    return res.stdout if res.returncode == 0 else None


def check_cluster(params: Mapping[str, Any]) -> int | None:
    """check() against the cluster this machine submits to; None when scontrol cannot tell."""
    parts, nodes, config = (
        _scontrol("show", "partition", "-o"),
        _scontrol("show", "node", "-o"),
        _scontrol("show", "config"),
    )
    if parts is None or nodes is None or config is None:
        return None
    return check(params, parse_records(parts), parse_records(nodes), parse_config(config))
