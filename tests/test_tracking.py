"""Tracking: W&B offline files hold the logged metrics (read back with wandb's own protobuf records),
the W&B run id survives a resume, a broken W&B never loses the run, results.json and run-dir hashes."""

from __future__ import annotations

import json
import logging
import struct
import time
from pathlib import Path

import pytest

from spelab.tracking import cfg_hash, read_results, run_id, write_results
from spelab.train import train

SMOKE = ["debug=smoke"]


def read_wandb_records(run_file: Path) -> list:
    """Records of an offline `.wandb` file: W&B's LevelDB-style log (7-byte header, 32 KiB blocks,
    chunks of crc32/len16/type8), each record a `wandb.proto.wandb_internal_pb2.Record`."""
    from wandb.proto import wandb_internal_pb2

    data = run_file.read_bytes()
    assert data[:4] == b":W&B", f"{run_file} is not a W&B log"
    block, pos, pending, records = 32768, 7, b"", []
    while pos + 7 <= len(data):
        left = block - pos % block
        if left < 7:
            pos += left
            continue
        _, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        if kind == 0 and length == 0:  # block padding
            pos += left
            continue
        chunk, pos = data[pos + 7 : pos + 7 + length], pos + 7 + length
        if kind in (1, 2):  # full, first
            pending = chunk
        else:  # middle, last
            pending += chunk
        if kind in (1, 4):
            rec = wandb_internal_pb2.Record()
            rec.ParseFromString(pending)
            records.append(rec)
    return records


def read_finished_run(run_file: Path, timeout: float = 60.0) -> list:
    """The records once the run's exit record is on disk: wandb.finish() returns before W&B's
    service process has written everything in offline mode."""
    deadline = time.monotonic() + timeout
    while True:
        records = read_wandb_records(run_file)
        if any(r.WhichOneof("record_type") == "exit" for r in records) or time.monotonic() > deadline:
            return records
        time.sleep(0.2)


def _history(records: list) -> list[dict]:
    rows = []
    for rec in records:
        if rec.WhichOneof("record_type") == "history":
            rows.append({("/".join(it.nested_key) or it.key): json.loads(it.value_json) for it in rec.history.item})
    return rows


def test_wandb_offline_run_holds_the_logged_metrics(make_cfg, tmp_path: Path) -> None:
    res = train(make_cfg(SMOKE + ["attention=linear", "pos_enc=convspe", "seed=2", "tags=[mine]"]))
    run_dir = tmp_path / "run"
    [run_file] = run_dir.glob("wandb/offline-run-*/run-*.wandb")
    records = read_finished_run(run_file)
    history = _history(records)
    logged = {k: v for row in history for k, v in row.items()}
    for key in ("test/acc", "test/loss", "val/acc", "val/acc_best"):
        assert logged[key] == pytest.approx(res["metrics"][key], rel=1e-6), key
    assert sum("train/loss" in row for row in history) == res["metrics"]["global_step"]
    [run] = [r.run for r in records if r.WhichOneof("record_type") == "run"]
    assert run.run_id == run_id(run_dir)
    assert run.run_group == "listops/linear/convspe" and run.display_name == "listops/linear/convspe/s2"
    assert {"listops", "linear", "convspe", "adhoc", "mine"} <= set(run.tags)
    config = {}
    for rec in records:
        if rec.WhichOneof("record_type") == "config":
            config.update({it.key: json.loads(it.value_json) for it in rec.config.update})
    assert config["task"]["name"] == "listops" and config["seed"] == 2
    assert config["model"]["pos_enc"]["_target_"] == "spelab.nn.ConvSPE"


def test_wandb_resumes_the_same_run_id(make_cfg, tmp_path: Path) -> None:
    run = SMOKE + ["trainer.max_steps=4", "ckpt_every_n_steps=2"]
    with pytest.raises(RuntimeError):
        train(make_cfg(run + ["fail_at_step=3"]))
    train(make_cfg(run))
    files = sorted((tmp_path / "run").glob("wandb/offline-run-*/run-*.wandb"))
    assert len(files) == 2
    ids = {r.run.run_id for f in files for r in read_finished_run(f) if r.WhichOneof("record_type") == "run"}
    assert ids == {run_id(tmp_path / "run")}
    # the failed attempt's W&B run was closed with a non-zero exit code
    exits = [r.exit.exit_code for r in read_finished_run(files[0]) if r.WhichOneof("record_type") == "exit"]
    assert exits and exits[-1] != 0


def test_broken_wandb_does_not_lose_the_run(make_cfg, tmp_path: Path, caplog) -> None:
    cfg = make_cfg(SMOKE + ["logger.wandb._target_=spelab.no_such_module.WandbLogger"])
    with caplog.at_level(logging.WARNING):
        res = train(cfg)
    assert res["status"] == "done"
    assert "W&B logging disabled" in caplog.text
    assert list((tmp_path / "run").glob("csv/version_*/metrics.csv"))
    assert not (tmp_path / "run" / "wandb").exists()


def test_results_json_round_trip_and_atomic_write(tmp_path: Path) -> None:
    import torch

    path = write_results(tmp_path / "r", {"status": "done", "metrics": {"test/acc": torch.tensor(0.5)}})
    assert read_results(tmp_path / "r") == {"status": "done", "metrics": {"test/acc": 0.5}}
    assert not list(path.parent.glob("*.tmp"))
    path.write_text("{half")
    assert read_results(tmp_path / "r") is None
    assert read_results(tmp_path / "missing") is None


def test_cfg_hash_separates_configurations() -> None:
    assert cfg_hash("") == ""
    a = cfg_hash("debug=smoke,model.d_model=32")
    assert a == cfg_hash("debug=smoke,model.d_model=32") and len(a) == 9 and a.startswith("-")
    assert a != cfg_hash("debug=smoke,model.d_model=16")
    assert run_id(Path("/x/y")) == run_id(Path("/x/y")) != run_id(Path("/x/z"))
