"""Fuzz the data readers with malformed inputs: every failure must be a clear, typed DataError that
names the file; readers that skip bad records must never crash and must count what they skipped."""

from __future__ import annotations

import io
import pickle
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from spelab.errors import DataError

# derandomized: CI sees the same inputs every run (the explicit @example cases pin known-bad inputs)
FUZZ = settings(
    max_examples=40, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

# text that looks like the formats: tabs, newlines, digits, brackets, odd numbers, odd unicode
FIELD = st.one_of(
    st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=20),
    st.sampled_from(
        [
            "0",
            "1",
            "9",
            "10",
            "-1",
            "1.0",
            "nan",
            "inf",
            "-inf",
            "1e400",
            "",
            "[MAX 2 3 ]",
            "Source",
            "Target",
            "\x00",
            '"',
            "é",
            "2" * 30,
        ]
    ),
)
ROWS = st.lists(st.lists(FIELD, min_size=0, max_size=6), max_size=8)


def _tsv_bytes(header: list[str] | None, rows: list[list[str]], mangle: bytes) -> bytes:
    lines = (["\t".join(header)] if header is not None else []) + ["\t".join(r) for r in rows]
    return "\n".join(lines).encode("utf-8", errors="surrogatepass") + mangle


MANGLE = st.sampled_from([b"", b"\n", b"\xff\xfe\x00", b"\r\n\t\t", b"\n\x80abc"])


def _write(data: bytes, name: str) -> Path:
    d = Path(tempfile.mkdtemp(prefix="fuzz-"))
    path = d / name
    path.write_bytes(data)
    return path


def _typed(err: BaseException, path: Path) -> None:
    assert isinstance(err, DataError), f"{type(err).__name__}: {err}"
    assert str(path) in str(err) or str(path.parent) in str(err)


# ------------------------------------------------------------------------------------------ ListOps
@FUZZ
@example(header=["Source", "Target"], rows=[["[MAX 1 2 ]", "inf"]], mangle=b"")
@example(header=["Source", "Target"], rows=[["[MAX 1 2 ]"]], mangle=b"\xff")
@given(
    header=st.one_of(st.none(), st.just(["Source", "Target"]), st.lists(FIELD, max_size=3)), rows=ROWS, mangle=MANGLE
)
def test_listops_tsv_reader(header, rows, mangle):
    from spelab.data.lra.listops import read_listops_tsv

    path = _write(_tsv_bytes(header, rows, mangle), "basic_train.tsv")
    try:
        out = read_listops_tsv(path)
    except Exception as err:  # noqa: BLE001 - the point is which type it is
        _typed(err, path)
        return
    assert all(isinstance(s, str) and isinstance(t, int) for s, t in out)


def test_listops_truncated_row_names_file_and_line(tmp_path):
    from spelab.data.lra.listops import read_listops_tsv

    path = tmp_path / "basic_train.tsv"
    path.write_text("Source\tTarget\n[MAX 2 3 ]\t3\n[MIN 4 ")  # a file cut mid-row
    with pytest.raises(DataError) as info:
        read_listops_tsv(path)
    assert info.value.line == 3 and str(path) in str(info.value)


# ------------------------------------------------------------------------------------------ AAN
@FUZZ
@example(rows=[["inf", "a", "b", "text one", "text two"]], mangle=b"")
@example(rows=[["1e400", "a", "b", "x", "y"], ["1.0", "a"]], mangle=b"\n\x80")
@given(rows=ROWS, mangle=MANGLE)
def test_aan_tsv_reader(rows, mangle):
    from spelab.data.lra.readers import read_aan_tsv

    path = _write(_tsv_bytes(None, rows, mangle), "new_aan_pairs.train.tsv")
    try:
        out = list(read_aan_tsv(path))
    except Exception as err:  # noqa: BLE001
        _typed(err, path)
        return
    assert all(label in (0, 1) and isinstance(a, str) and isinstance(b, str) for label, a, b in out)


# ------------------------------------------------------------------------------------------ Pathfinder
PNG_BYTES = st.one_of(
    st.binary(max_size=64), st.just(b"\x89PNG\r\n\x1a\n" + b"\x00" * 20), st.just(b"not an image at all")
)


def _png(size: int, value: int) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.full((size, size), value, dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


@FUZZ
@given(data=PNG_BYTES)
def test_gray_png_reader_never_raises_on_garbage(data):
    from spelab.data.lra.readers import read_gray_png

    path = _write(data, "sample_0.png")
    arr, why = read_gray_png(path, 8)
    assert (arr is None) != (why is None)
    if arr is not None:
        assert arr.shape == (8, 8)


@FUZZ
@given(
    meta_lines=st.lists(st.lists(FIELD, max_size=5), max_size=6),
    images=st.lists(PNG_BYTES, max_size=3),
    good=st.integers(0, 2),
)
def test_pathfinder_reader(meta_lines, images, good):
    from spelab.data.lra.readers import read_pathfinder_images

    root = Path(tempfile.mkdtemp(prefix="fuzz-pf-"))
    (root / "metadata").mkdir()
    (root / "imgs" / "0").mkdir(parents=True)
    lines = [" ".join(f.replace("\n", " ") for f in fields) for fields in meta_lines]
    blobs = list(images) + [_png(8, 100 + i) for i in range(good)]
    for i, blob in enumerate(blobs):
        (root / "imgs" / "0" / f"sample_{i}.png").write_bytes(blob)
        lines.append(f"imgs/0 sample_{i}.png {i} {i % 2}")
    (root / "metadata" / "0.npy").write_text("\n".join(lines))
    try:
        x, y, skipped = read_pathfinder_images(root, 8)
    except Exception as err:  # noqa: BLE001
        _typed(err, root / "metadata")
        return
    assert x.shape[1] == 64 and len(x) == len(y) >= 1 and set(y.tolist()) <= {0, 1}


def test_non_image_png_is_skipped_and_counted(tmp_path):
    from spelab.data.lra.readers import read_pathfinder_images

    (tmp_path / "metadata").mkdir()
    (tmp_path / "imgs" / "0").mkdir(parents=True)
    for i in range(4):
        (tmp_path / "imgs" / "0" / f"sample_{i}.png").write_bytes(_png(8, i) if i else b"GIF89a, not a png")
    (tmp_path / "metadata" / "0.npy").write_text("".join(f"imgs/0 sample_{i}.png {i} {i % 2}\n" for i in range(4)))
    x, y, skipped = read_pathfinder_images(tmp_path, 8)
    assert len(x) == 3 and skipped.count == 1 and "unreadable image" in skipped.summary()


# ------------------------------------------------------------------------------------------ MIDI
def _midi(notes: int) -> bytes:
    import mido

    mid = mido.MidiFile()
    track = mido.MidiTrack()
    for i in range(notes):
        track.append(mido.Message("note_on", note=40 + i % 20, velocity=64, time=0))
        track.append(mido.Message("note_off", note=40 + i % 20, velocity=0, time=240))
    mid.tracks.append(track)
    buf = io.BytesIO()
    mid.save(file=buf)
    return buf.getvalue()


MIDI_BYTES = st.one_of(
    st.binary(max_size=80),
    st.just(b"MThd\x00\x00\x00\x06\x00\x01\x00\x01\x01\xe0"),
    st.builds(lambda n, cut: _midi(n)[:cut], st.integers(1, 5), st.integers(0, 60)),
)


@FUZZ
@given(blobs=st.lists(MIDI_BYTES, min_size=1, max_size=3))
def test_groove_midi_reader(blobs):
    from spelab.data.music.groove import make_groove_tokenizer, read_split

    d = Path(tempfile.mkdtemp(prefix="fuzz-midi-"))
    for i, blob in enumerate(blobs):
        (d / f"song{i}.mid").write_bytes(blob)
    try:
        pieces, skipped = read_split(
            d,
            _TOKENIZER[0] if _TOKENIZER else _TOKENIZER.append(make_groove_tokenizer()) or _TOKENIZER[0],
            all_harmonic=True,
            drop_bars=0,
            max_files=None,
        )
    except Exception as err:  # noqa: BLE001
        _typed(err, d / "x")
        return
    # each file is skipped once or yields pieces (never both); pieces are token ids of the tokenizer
    from_files = {name.split("#")[0] for name, _ in pieces}
    assert from_files <= {f"song{i}.mid" for i in range(len(blobs))}, from_files
    assert skipped.count + len(from_files) <= len(blobs), (skipped.count, from_files)
    vocab_size = len(_TOKENIZER[0].vocab)
    for name, ids in pieces:
        assert ids.dtype == np.int32 and len(ids) >= 2 and 0 <= ids.min() and ids.max() < vocab_size, name


_TOKENIZER: list = []


def test_corrupt_midi_is_skipped_and_counted(tmp_path):
    from spelab.data.music.groove import make_groove_tokenizer, read_split

    (tmp_path / "broken.mid").write_bytes(b"MThd garbage \x00\x01")
    (tmp_path / "empty.mid").write_bytes(b"")
    pieces, skipped = read_split(tmp_path, make_groove_tokenizer(), all_harmonic=True, drop_bars=0, max_files=None)
    assert pieces == [] and skipped.count == 2 and "unreadable MIDI" in skipped.summary()


# ------------------------------------------------------------------------------------------ pop piano (pickles)
# fixed garbage only: unpickling random bytes can ask for gigabytes (a MemoryError on a shared machine)
GARBAGE_PICKLES = [b"", b"\x00not a pickle", b"\x80\x06garbage", b"(lp0\nI1\n", pickle.dumps(object)[:-3]]


@FUZZ
@given(
    blob=st.one_of(
        st.sampled_from(GARBAGE_PICKLES),
        st.builds(
            pickle.dumps,
            st.one_of(
                st.none(),
                st.integers(),
                st.lists(st.integers(), max_size=3),
                st.tuples(
                    st.lists(st.integers(), max_size=3),
                    st.lists(
                        st.dictionaries(
                            st.sampled_from(["name", "value", "x"]), st.one_of(st.text(max_size=5), st.integers())
                        ),
                        max_size=3,
                    ),
                ),
            ),
        ),
    )
)
@example(
    blob=pickle.dumps(
        ([0, 2], [{"name": "Bar", "value": "None"}, {"name": "Tempo", "value": 97}, {"name": "Note-On", "value": 60}])
    )
)  # a valid piece, read whole
def test_pop_piano_piece_reader(blob):
    from spelab.data.music.pop_piano import read_piece

    path = _write(blob, "piece.pkl")
    index = {"Bar_None": 1, "Tempo_100": 2, "Note-On_60": 3}
    try:
        ids, bars = read_piece(path, index)
    except Exception as err:  # noqa: BLE001
        _typed(err, path)
        return
    # read: one known token per event (tempos snapped to Tempo_100), the bar positions as given
    bar_pos, events = pickle.loads(blob)
    assert ids.dtype == np.int32 and len(ids) == len(events) and set(ids.tolist()) <= set(index.values())
    assert bars.tolist() == list(bar_pos)
