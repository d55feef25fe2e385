"""spelab.evaluate (NLL per position beyond the training length) and spelab.generate (MIDI) on a run
trained by spelab.train on task=music debug=smoke."""

from __future__ import annotations

import json

import mido
import numpy as np
import pytest
import torch

from music_helpers import smoke_overrides, train_run
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
    model = {"_target_": "spelab.nn.Transformer", "d_model": 8, "num_layers": 1, "num_heads": 2, "ff_dim": 16,
             "dropout": 0.0, "max_len": 32, "pos_enc": {"_target_": "spelab.nn.SinusoidalPositionalEncoding",
                                                        "_partial_": True},
             "attention": {"_target_": "spelab.nn.LinearAttention", "_partial_": True}}
    torch.manual_seed(0)
    task = LanguageModelTask(model, vocab_size=50).double().eval()
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
    summary = ev.main([f"sweep_dir={ckpt.parent.parent.parent}", f"max_length={2 * TRAIN_LEN}",
                       f"output_dir={out}", "wandb=false"])
    assert len(summary["runs"]) == 1 and (out / ev.FIGURE_PNG).is_file()


def test_generate_writes_midi_with_notes(ckpt, tmp_path):
    out = tmp_path / "gen"
    paths = gen.main([f"ckpt={ckpt}", "num_tokens=48", f"output_dir={out}", "num_samples=2", "prompt_piece=0",
                      "prompt_tokens=24", "wandb=false"])
    assert len(paths) == 2
    for p in paths:
        midi = mido.MidiFile(p)  # an independent reader
        notes = [m for t in midi.tracks for m in t if m.type == "note_on" and m.velocity > 0]
        assert notes
        tokens = json.loads(p.with_suffix("").with_suffix(".tokens.json").read_text())
        assert len(tokens["ids"]) == 24 + 48 and tokens["prompt_length"] == 24


def test_bad_arguments_fail_clearly(tmp_path):
    with pytest.raises(SystemExit, match="allowed keys"):
        ev.main(["nonsense_key=1"])
    with pytest.raises(SystemExit, match="give ckpt=PATH"):  # one line, no traceback (spelab.cli.run_tool)
        ev.main([f"output_dir={tmp_path}"])
    with pytest.raises(SystemExit, match="missing.ckpt does not exist"):
        gen.main([f"ckpt={tmp_path / 'missing.ckpt'}"])
