"""spelab.evaluate (NLL per position beyond the training length) and spelab.generate (MIDI) on a run
trained by spelab.train on task=music debug=smoke."""

from __future__ import annotations

import json

import mido
import numpy as np
import pytest
import torch
from hydra.utils import instantiate

from music_helpers import needs_audio, smoke_overrides, train_run
from spelab import evaluate as ev
from spelab import generate as gen

TRAIN_LEN = 32


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory, music_cache):
    run = tmp_path_factory.mktemp("runs") / "linear-sinespe"
    return train_run(run, smoke_overrides(music_cache, "linear", "sinespe", length=TRAIN_LEN))


def test_evaluate_writes_nll_beyond_the_training_length(ckpt, tmp_path):
    out = tmp_path / "eval"
    summary = ev.main([f"ckpt={ckpt}", f"max_length={4 * TRAIN_LEN}", f"output_dir={out}", "wandb=false"])
    data = json.loads((out / ev.RESULTS_JSON).read_text())
    assert data == json.loads(json.dumps(summary))
    run = data["runs"][0]
    assert run["train_length"] == TRAIN_LEN and run["eval_length"] == 4 * TRAIN_LEN
    assert run["label"] == "linear-sinespe"
    assert len(run["nll"]) == 4 * TRAIN_LEN and run["tokens_beyond"] > 0
    assert all(np.isfinite(x) for x in run["nll"] if x is not None)
    assert (out / ev.FIGURE_PNG).stat().st_size > 1000
    curve = json.loads((ckpt.parent.parent / ev.RUN_CURVE_JSON).read_text())  # for spelab.report
    assert len(curve["positions"]) == len(curve["nll"]) == 4 * TRAIN_LEN // (TRAIN_LEN // 8)
    # the within/beyond means are token-weighted means of the per-position values
    nll, count = np.array(run["nll"], dtype=float), np.array(run["count"])
    within = np.nansum(nll[:TRAIN_LEN] * count[:TRAIN_LEN]) / count[:TRAIN_LEN].sum()
    assert run["nll_within"] == pytest.approx(within)


@torch.no_grad()
def test_per_position_nll_matches_a_piece_by_piece_computation():
    """Batched, padded evaluation == each piece alone with a hand-written log-softmax (float64)."""
    from spelab.tasks.language_model import LanguageModelTask

    model = {
        "_target_": "spelab.nn.Transformer",
        "d_model": 8,
        "num_layers": 1,
        "num_heads": 2,
        "ff_dim": 16,
        "dropout": 0.0,
        "max_len": 32,
        "pos_enc": {"_target_": "spelab.nn.SinusoidalPositionalEncoding", "_partial_": True},
        "attention": {"_target_": "spelab.nn.LinearAttention", "_partial_": True},
    }
    torch.manual_seed(0)
    task = LanguageModelTask(instantiate(model, vocab_size=50, causal=True), vocab_size=50).double().eval()
    seqs = [torch.randint(1, 50, (n,)) for n in (20, 9, 14)]
    total, count = ev.per_position_nll(task, seqs, batch_size=2)
    ref_total, ref_count = np.zeros(19), np.zeros(19)
    for s in seqs:
        logits = task.head(task.model(s[None, :-1]))[0]
        logp = logits - torch.logsumexp(logits, -1, keepdim=True)
        for t in range(len(s) - 1):
            ref_total[t] -= float(logp[t, s[t + 1]])
            ref_count[t] += 1
    assert np.array_equal(count, ref_count)
    np.testing.assert_allclose(total, ref_total, rtol=1e-10)
    summary = ev.summarise(total, count, train_length=8, bin_size=4)
    assert summary["nll_beyond"] == pytest.approx(ref_total[8:].sum() / ref_count[8:].sum())
    assert summary["bins"][0]["nll"] == pytest.approx(ref_total[:4].sum() / ref_count[:4].sum())


def test_sweep_dir_draws_all_runs_on_one_figure(ckpt, tmp_path):
    out = tmp_path / "eval"
    summary = ev.main(
        [f"sweep_dir={ckpt.parent.parent.parent}", f"max_length={2 * TRAIN_LEN}", f"output_dir={out}", "wandb=false"]
    )
    assert len(summary["runs"]) == 1 and (out / ev.FIGURE_PNG).is_file()


def test_generate_writes_midi_with_notes(ckpt, tmp_path):
    out = tmp_path / "gen"
    paths = gen.main(
        [
            f"ckpt={ckpt}",
            "num_tokens=48",
            f"output_dir={out}",
            "num_samples=2",
            "prompt_piece=0",
            "prompt_tokens=24",
            "wandb=false",
        ]
    )
    assert len(paths) == 2
    for p in paths:
        midi = mido.MidiFile(p)  # an independent reader
        notes = [m for t in midi.tracks for m in t if m.type == "note_on" and m.velocity > 0]
        assert notes
        tokens = json.loads(p.with_suffix("").with_suffix(".tokens.json").read_text())
        assert len(tokens["ids"]) == 24 + 48 and tokens["prompt_length"] == 24
    metrics = json.loads((out / gen.METRICS_JSON).read_text())
    assert [m["file"] for m in metrics["samples"]] == [p.name for p in paths]
    for m in metrics["samples"]:
        assert m["num_notes"] > 0 and m["note_density"] > 0 and 0 <= m["pitch_class_entropy"] <= np.log2(12)
        assert len(m["style_time_pitch_diff"]) == len(m["style_onset_duration"]) == 4
    assert "pitch_range/mean" in metrics["summary"]


def test_generate_from_a_barely_trained_model_gives_notes_in_time_order(ckpt, tmp_path):
    """The issue's reproduction: unconditional samples of a smoke run decoded to no notes and a negative
    delta (written as ~2**28 ticks); the grammar makes every sample valid."""
    out = tmp_path / "gen"
    paths = gen.main([f"ckpt={ckpt}", "num_tokens=128", f"output_dir={out}", "num_samples=3", "wandb=false"])
    for p in paths:
        midi = mido.MidiFile(p)
        assert max(m.time for t in midi.tracks for m in t) < 16 * midi.ticks_per_beat
        assert [m for t in midi.tracks for m in t if m.type == "note_on" and m.velocity > 0]


@needs_audio
@pytest.mark.slow  # W&B's offline start takes ~15 s
def test_generate_audio_writes_flac_and_a_piano_roll_beside_each_midi(ckpt, tmp_path):
    out = tmp_path / "gen"
    paths = gen.main(
        [f"ckpt={ckpt}", "num_tokens=32", f"output_dir={out}", "audio=true", "audio_format=flac", "wandb=true"]
    )
    assert paths[0].with_suffix(".flac").read_bytes()[:4] == b"fLaC"
    assert paths[0].with_suffix(".png").stat().st_size > 1000
    media = list(out.glob("wandb/offline-run-*/files/media/*/generate/*"))  # W&B got the audio and the image
    assert {m.parent.parent.name for m in media} == {"audio", "images"}


def test_generate_audio_without_fluidsynth_fails_before_sampling(ckpt, tmp_path, monkeypatch):
    monkeypatch.setattr("spelab.music.audio.shutil.which", lambda name: None)
    with pytest.raises(RuntimeError, match="make audio-deps"):
        gen.main([f"ckpt={ckpt}", "num_tokens=8", f"output_dir={tmp_path / 'g'}", "audio=true", "wandb=false"])
    assert not (tmp_path / "g").exists()
    with pytest.raises(ValueError, match="audio_format"):
        gen.main([f"ckpt={ckpt}", "num_tokens=8", f"output_dir={tmp_path / 'g'}", "audio_format=mp3"])


def test_bad_arguments_fail_clearly(tmp_path):
    with pytest.raises(SystemExit, match="allowed keys"):
        ev.main(["nonsense_key=1"])
    with pytest.raises(SystemExit, match="give ckpt=PATH"):  # one line, no traceback (spelab.cli.run_tool)
        ev.main([f"output_dir={tmp_path}"])
    with pytest.raises(SystemExit, match="missing.ckpt does not exist"):
        gen.main([f"ckpt={tmp_path / 'missing.ckpt'}"])


def test_aggregate_seeds_mean_and_std_per_bin():
    from spelab.eval_seeds import aggregate_seeds, table_markdown

    def run(label, seed, nlls, cfg="-abc"):
        bins = [{"start": 8 * k, "end": 8 * k + 8, "nll": v} for k, v in enumerate(nlls)]
        return {
            "label": label,
            "train_length": 8,
            "seed": seed,
            "config_id": cfg,
            "bins": bins,
            "task": "music",
            "eval_length": 8 * len(nlls),
            "nll_within": nlls[0],
            "nll_beyond": nlls[-1],
            "test_nll": 1.0 + seed,
        }

    runs = [
        run("a", 0, [1.0, 2.0]),
        run("a", 1, [2.0, None]),
        run("a", 2, [3.0, 4.0]),
        run("b", 0, [1.0, 1.5]),
        run("a", 0, [9.0, 9.0], cfg="-other"),
    ]
    groups = {(g["label"], g["n"]): g for g in aggregate_seeds(runs)}
    a = groups[("a", 3)]
    assert a["seeds"] == [0, 1, 2] and a["bins"][0]["mean"] == 2.0 and a["bins"][0]["std"] == pytest.approx(1.0)
    assert a["bins"][1]["mean"] == 3.0 and a["bins"][1]["std"] == pytest.approx(np.std([2.0, 4.0], ddof=1))
    assert a["test_nll_mean"] == 2.0 and a["gap_mean"] == 1.0  # seed 1 has no beyond value: skipped
    assert groups[("b", 1)]["bins"][1]["std"] == 0.0 and ("a", 1) in groups  # another configuration
    assert "| a | 3 | 2.0000 ± 1.0000 |" in table_markdown(aggregate_seeds(runs))


def test_sweep_dir_with_several_seeds_is_aggregated(ckpt, tmp_path):
    """Two seeds of one configuration (the same weights here, so std 0) become one line with n=2."""
    import shutil

    from omegaconf import OmegaConf

    sweep = tmp_path / "sweep"
    for seed in (0, 1):
        run = sweep / "music" / "linear-sinespe" / f"seed{seed}-abc"
        shutil.copytree(ckpt.parent.parent, run)
        cfg = OmegaConf.load(run / ".hydra" / "config.yaml")
        cfg.seed = seed
        OmegaConf.save(cfg, run / ".hydra" / "config.yaml")
    out = tmp_path / "eval"
    summary = ev.main([f"sweep_dir={sweep}", f"max_length={2 * TRAIN_LEN}", f"output_dir={out}", "wandb=false"])
    [group] = summary["aggregate"]
    assert group["n"] == 2 and group["seeds"] == [0, 1] and group["label"] == "linear-sinespe"
    assert group["bins"][0]["std"] == pytest.approx(0.0, abs=1e-9)
    assert group["nll_within_mean"] == pytest.approx(summary["runs"][0]["nll_within"])
    assert "| linear-sinespe | 2 |" in (out / ev.TABLE_MD).read_text()
