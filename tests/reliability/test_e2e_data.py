"""Data problems through the real DataModules: fatal ones name the file (and line) and how to get the
data; the reader-level skips are covered by test_fuzz_readers.py."""

from __future__ import annotations

import pytest

from spelab.errors import DataError, MissingDataError


def _official(tmp_path, train_rows: str, test_rows: str | None = None):
    d = tmp_path / "listops-1000"
    d.mkdir()
    good = "".join(f"[MAX {i} {(i + 3) % 10} ]\t{max(i, (i + 3) % 10)}\n" for i in range(10))
    (d / "basic_train.tsv").write_text("Source\tTarget\n" + train_rows)
    (d / "basic_val.tsv").write_text("Source\tTarget\n" + good)
    (d / "basic_test.tsv").write_text("Source\tTarget\n" + (test_rows if test_rows is not None else good))
    return d


def _train(make_cfg, tmp_path, data_dir):
    from spelab.train import train

    cfg = make_cfg(
        ["debug=smoke", "logger=csv", "task.datamodule.source=official", f"task.datamodule.data_dir={data_dir}"],
        run_dir=tmp_path / "run",
    )
    return train(cfg)


def test_missing_official_dir_names_path_and_how_to_get_it(make_cfg, tmp_path):
    with pytest.raises(MissingDataError) as info:
        _train(make_cfg, tmp_path, tmp_path / "no_such_release")
    msg = str(info.value)
    assert str(tmp_path / "no_such_release") in msg and "lra_release" in msg
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_malformed_row_names_file_and_line(make_cfg, tmp_path):
    rows = "[MAX 2 3 ]\t3\n[MIN 4 5 ]\tfive\n"
    d = _official(tmp_path, rows)
    with pytest.raises(DataError) as info:
        _train(make_cfg, tmp_path, d)
    assert info.value.line == 3 and str(d / "basic_train.tsv") in str(info.value)


def test_single_class_dataset_is_refused(make_cfg, tmp_path):
    rows = "".join(f"[MAX {i} 9 ]\t9\n" for i in range(9))
    d = _official(tmp_path, rows)
    with pytest.raises(DataError) as info:
        _train(make_cfg, tmp_path, d)
    assert str(d / "basic_train.tsv") in str(info.value) and "class" in str(info.value)


def test_label_outside_the_task_classes_is_refused(make_cfg, tmp_path):
    rows = "[MAX 2 3 ]\t3\n[MIN 4 5 ]\t42\n"
    d = _official(tmp_path, rows)
    with pytest.raises(DataError) as info:
        _train(make_cfg, tmp_path, d)
    assert str(d / "basic_train.tsv") in str(info.value) and "42" in str(info.value)
