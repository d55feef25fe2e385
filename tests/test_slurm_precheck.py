"""SLURM precheck: parsing scontrol's output (fast, no cluster) and, on the real one-node cluster, a
GPU launcher or an unknown partition failing in one line before anything is submitted, and a grid larger
than MaxArraySize going out as several arrays (MaxArraySize lowered by env for the test only; the shared
cluster's configuration is never touched)."""

from __future__ import annotations

import pytest

from spelab.slurm_precheck import (
    MAX_ARRAY_ENV,
    SlurmPrecheckError,
    check,
    node_gpus,
    parse_config,
    parse_records,
    requested_gpus,
)

PARTS = parse_records(
    "PartitionName=debug AllowGroups=ALL Default=YES Nodes=vm State=UP TotalCPUs=2\n"
    "PartitionName=gpu AllowGroups=ALL Default=NO Nodes=gpu[01-02] State=UP\n"
)
NODES = parse_records(
    "NodeName=vm Arch=x86_64 CPUTot=2 Gres=(null) State=IDLE\n"
    "NodeName=gpu01 CPUTot=64 Gres=gpu:a100:4(S:0-1) State=IDLE\n"
    "NodeName=gpu02 CPUTot=64 Gres=gpu:4,shard:8 State=IDLE\n"
)
CONFIG = parse_config(
    "Configuration data as of 2026-01-01T00:00:00\nMaxArraySize            = 1001\nGresTypes               = gpu\n"
)


def test_parsers():
    assert PARTS[1]["Nodes"] == "gpu[01-02]" and CONFIG["MaxArraySize"] == "1001"
    assert [node_gpus(n["Gres"]) for n in NODES] == [0, 4, 4]
    assert requested_gpus({"gpus_per_node": 1}) == 1 and requested_gpus({"gpus_per_node": None}) == 0
    assert requested_gpus({"additional_parameters": {"gres": "gpu:2"}}) == 2


def test_gpus_on_a_cpu_partition_name_the_cpu_launcher():
    with pytest.raises(
        SlurmPrecheckError,
        match=r"gpus_per_node=1 asks for GPUs but partition 'debug' has none.*"
        r"hydra/launcher=slurm_cpu",
    ):
        check({"gpus_per_node": 1, "partition": None}, PARTS, NODES, CONFIG, env={})
    assert check({"gpus_per_node": 4, "partition": "gpu"}, PARTS, NODES, CONFIG, env={}) == 1001
    with pytest.raises(SlurmPrecheckError, match="at most 4 GPUs"):
        check({"gpus_per_node": 8, "partition": "gpu"}, PARTS, NODES, CONFIG, env={})


def test_unknown_partition_names_the_key_and_the_choices():
    with pytest.raises(SlurmPrecheckError, match=r"hydra.launcher.partition='nope'.*it has: debug, gpu"):
        check({"partition": "nope"}, PARTS, NODES, CONFIG, env={})


def test_array_limit_from_config_or_lower_env():
    assert check({}, PARTS, NODES, CONFIG, env={}) == 1001
    assert check({}, PARTS, NODES, CONFIG, env={MAX_ARRAY_ENV: "2"}) == 2
    assert check({}, PARTS, NODES, CONFIG, env={MAX_ARRAY_ENV: "5000"}) == 1001
