"""The music task and experiment configs compose and pin the paper's settings (docs/spe.md, "The paper's experiments")."""

from __future__ import annotations

import pytest
from hydra.utils import get_class, instantiate

from music_helpers import compose

PAPER = {  # experiment -> (pos_enc target suffix, lr, pos_enc options, training length)
    "pop_piano_ape": ("SinusoidalPositionalEncoding", 1e-4, {}, 2048),
    "pop_piano_sinespe": ("SineSPE", 2e-4, {"num_sines": 5, "num_realizations": 64, "gated": True}, 2048),
    "pop_piano_convspe": ("ConvSPE", 2e-4, {"kernel_size": 128, "num_realizations": 64, "gated": True}, 2048),
    "groove_ape": ("SinusoidalPositionalEncoding", 4e-4, {}, 512),
    "groove_sinespe": ("SineSPE", 4e-4, {"num_sines": 8, "num_realizations": 64, "gated": True}, 512),
    "groove_convspe": ("ConvSPE", 4e-4, {"kernel_size": 128, "num_realizations": 64, "gated": True}, 512),
}


@pytest.mark.parametrize("name", sorted(PAPER))
def test_experiment_pins_the_paper(name, tmp_path):
    cfg = compose([f"experiment=music/{name}", f"paths.data_dir={tmp_path}"])
    target, lr, pe_opts, length = PAPER[name]
    m = cfg.model
    assert (m.d_model, m.num_layers, m.num_heads, m.ff_dim, m.causal, m.share_code) == (512, 24, 8, 2048, True, True)
    assert m.attention._target_.endswith("PerformerAttention") and m.attention.num_features == 128
    assert m.pos_enc._target_.endswith(target)
    assert {k: m.pos_enc[k] for k in pe_opts} == pe_opts
    assert cfg.task.module.lr == pytest.approx(lr) and cfg.task.module.schedule == "cosine"
    assert cfg.task.datamodule.max_length == length and cfg.trainer.gradient_clip_val == 0.5
    assert cfg.task.kind == "lm" and cfg.task.family == "music"
    assert get_class(cfg.task.module._target_).__name__ == "LanguageModelTask"


@pytest.mark.parametrize("task,vocab", [("music", None), ("pop_piano", 344), ("groove", None)])
def test_task_datamodules_instantiate_without_data(task, vocab, tmp_path):
    cfg = compose(
        [f"task={task}", f"paths.data_dir={tmp_path}", "task.datamodule.max_pieces=8"]
        if task == "music"
        else [f"task={task}", f"paths.data_dir={tmp_path}"]
    )
    dm = instantiate(cfg.task.datamodule)  # lazy: no data read yet
    assert dm.num_classes == 0 and dm.pad_id == 0
    assert dm.max_length == cfg.task.datamodule.max_length == cfg.model.max_len
    if vocab:
        assert dm.vocab_size == vocab
