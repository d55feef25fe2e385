"""Grammar-constrained sampling: every sample, even from an untrained model, decodes to a MIDI file
with complete notes in time order, checked with an independent reader (mido)."""

from __future__ import annotations

import mido
import numpy as np
import pytest
import torch
from hydra.utils import instantiate

from spelab.data.music.grammar import MidiLikeGrammar, RemiGrammar, grammar_for, replay
from spelab.generate import filter_logits, sample
from spelab.tasks.language_model import LanguageModelTask


def chorale_vocab():
    from spelab.data.music.remi import make_remi_tokenizer

    tok = make_remi_tokenizer()
    inverse = {i: t for t, i in tok.vocab.items()}
    return [inverse[i] for i in range(len(inverse))], lambda ids: __import__(
        "spelab.data.music.remi", fromlist=["ids_to_score"]
    ).ids_to_score(tok, ids)


def pop_vocab():
    from spelab.data.music.pop_piano import remi_events_to_score, spec_events

    vocab = ["PAD_None"] + spec_events()
    return vocab, lambda ids: remi_events_to_score([vocab[i] for i in ids if i > 0])


def groove_vocab():
    from spelab.data.music.groove import make_groove_tokenizer

    tok = make_groove_tokenizer()
    inverse = {i: t for t, i in tok.vocab.items()}
    return [inverse[i] for i in range(len(inverse))], lambda ids: tok.decode([i for i in ids if i >= 3])


VOCABS = {"remi-miditok": chorale_vocab, "remi-pop": pop_vocab, "midilike-groove": groove_vocab}


def read_midi(score, path):
    """Dump with symusic, read back with mido: (notes as (start, end, pitch), length in ticks, ticks per beat)."""
    score.dump_midi(str(path))
    midi = mido.MidiFile(str(path))
    notes, total = [], 0
    for track in midi.tracks:
        now, on = 0, {}
        for msg in track:
            assert msg.time >= 0
            now += msg.time
            if msg.type == "note_on" and msg.velocity > 0:
                on.setdefault((msg.channel, msg.note), []).append(now)
            elif msg.type in ("note_off", "note_on"):
                starts = on.get((msg.channel, msg.note))
                assert starts, f"note_off without note_on at tick {now}"
                notes.append((starts.pop(0), now, msg.note))
        assert not any(on.values()), "notes left sounding at the end of the track"
        total = max(total, now)
    return notes, total, midi.ticks_per_beat


def check_sample(ids, vocab, decode, tmp_path):
    grammar = grammar_for(vocab)
    state = grammar.start()
    for t in ids:  # every sampled token was allowed after its prefix
        assert grammar.allowed(state)[t], f"{vocab[t]} not allowed after expect={getattr(state, 'expect', '?')}"
        grammar.advance(state, t)
    full = list(ids) + grammar.finish(state)
    notes, total, tpb = read_midi(decode(full), tmp_path / "s.mid")
    assert notes, "no notes"
    # time moves forward: the piece is no longer than its bars (REMI) or its time shifts (MIDI-like) allow
    bars = sum(vocab[t] == "Bar_None" for t in full)
    shifts = sum(vocab[t].startswith("TimeShift_") for t in full)
    bound = (bars + 4) * 6 * tpb if bars else (shifts + 2) * 2 * tpb + 12 * tpb
    assert 0 < total <= bound, (total, bound)
    assert all(0 <= s <= e <= total for s, e, _ in notes)
    return notes


@pytest.mark.parametrize("name", sorted(VOCABS))
def test_random_walks_through_the_grammar_decode_to_ordered_notes(name, tmp_path):
    """Uniform choices among the allowed tokens (the worst an untrained model can do)."""
    vocab, decode = VOCABS[name]()
    grammar = grammar_for(vocab)
    rng = np.random.default_rng(0)
    for length in (3, 7, 60, 300):
        for _ in range(3):
            state, ids = grammar.start(), []
            for _ in range(length):
                t = int(rng.choice(np.flatnonzero(grammar.allowed(state))))
                grammar.advance(state, t)
                ids.append(t)
            check_sample(ids, vocab, decode, tmp_path)


def test_remi_positions_never_go_back_and_stay_in_the_bar():
    vocab, _ = chorale_vocab()
    g = RemiGrammar(vocab)
    idx = {t: i for i, t in enumerate(vocab)}
    st = replay(
        g, [idx[t] for t in ["Bar_None", "TimeSig_3/4", "Position_5", "Pitch_60", "Velocity_63", "Duration_1.0.4"]]
    )
    allowed = {vocab[i] for i in np.flatnonzero(g.allowed(st))}
    positions = {int(t.split("_")[1]) for t in allowed if t.startswith("Position_")}
    assert positions == set(range(5, 12))  # 3/4 at 4 positions per beat: 12 positions, from 5 on
    assert "Bar_None" in allowed and "Pitch_21" in allowed and not any(t.startswith("Velocity") for t in allowed)
    assert {vocab[i] for i in np.flatnonzero(g.allowed(g.start()))} == {"Bar_None"}
    # an empty first bar is not allowed (so every sample has a note)
    assert not g.allowed(replay(g, [idx["Bar_None"]]))[idx["Bar_None"]]


def test_midilike_releases_only_sounding_notes_and_finish_closes_them():
    vocab, _ = groove_vocab()
    g = MidiLikeGrammar(vocab)
    idx = {t: i for i, t in enumerate(vocab)}
    st = replay(g, [idx[t] for t in ["Program_33", "NoteOn_40", "Velocity_95", "TimeShift_0.3.12", "Program_33"]])
    allowed = {vocab[i] for i in np.flatnonzero(g.allowed(st))}
    assert {t for t in allowed if t.startswith("NoteOff")} == {"NoteOff_40"} and "NoteOn_40" not in allowed
    assert [vocab[i] for i in g.finish(replay(g, [idx["Program_-1"], idx["DrumOn_36"]]))] == [
        "Velocity_79",
        "TimeShift_0.1.12",
        "Program_-1",
        "DrumOff_36",
    ]


def test_real_chorales_follow_the_grammar(music_cache):
    """The grammar is not stricter than the data: every token of the smoke chorales is allowed."""
    from spelab.data.music.chorales import ChoralesDataModule

    dm = ChoralesDataModule(max_pieces=8, data_dir=str(music_cache), max_length=32)
    g = grammar_for(dm.vocab)
    for split in ("train", "val", "test"):
        for ids in dm.split_ids(split):
            st = g.start()
            for t in ids.tolist():
                assert g.allowed(st)[t], dm.vocab[t]
                g.advance(st, t)


def test_filter_logits_takes_the_nucleus_among_allowed_tokens():
    logits = torch.tensor([[0.0, 9.0, 1.0, 1.0, -1.0]])
    allowed = torch.tensor([[False, False, True, True, True]])
    logp = filter_logits(logits, 1.0, 0.5, banned=(0,), allowed=allowed)
    assert torch.isinf(logp[0, :2]).all() and torch.isfinite(logp[0, 2:4]).all() and torch.isinf(logp[0, 4])
    assert float(logp.exp().sum()) == pytest.approx(1.0)


@pytest.mark.parametrize("attention,pos_enc", [("linear", "sinespe"), ("performer", "convspe"), ("softmax", "rope")])
@torch.no_grad()
def test_untrained_model_samples_valid_midi(attention, pos_enc, tmp_path):
    """Recurrent O(1) steps, temperature and top-p, from a randomly initialised model."""
    from test_recurrent_decoding import ATTENTION, POS_ENC

    vocab, decode = chorale_vocab()
    model = {
        "_target_": "spelab.nn.Transformer",
        "d_model": 16,
        "num_layers": 2,
        "num_heads": 2,
        "ff_dim": 32,
        "dropout": 0.0,
        "max_len": 160,
        "attention": ATTENTION[attention],
        "pos_enc": POS_ENC[pos_enc],
    }
    torch.manual_seed(0)
    task = LanguageModelTask(instantiate(model, vocab_size=len(vocab), causal=True), vocab_size=len(vocab)).eval()
    prompt = torch.full((3, 1), vocab.index("Bar_None"))
    gen = torch.Generator().manual_seed(0)
    ids = sample(task, prompt, 128, temperature=1.3, top_p=0.9, generator=gen, grammar=grammar_for(vocab))
    for row in ids.tolist():
        notes = check_sample(row, vocab, decode, tmp_path)
        assert len(notes) >= 3
