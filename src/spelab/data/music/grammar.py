"""Token grammars for sampling: which ids may follow a prefix, so every sample decodes to valid music.

A grammar is a small state machine over the token strings of a vocabulary. `allowed(state)` is a
(V,) bool mask of the ids that may come next, `advance(state, id)` moves the state on, `finish(state)`
returns the ids that complete a piece cut mid-note. Sampling masks the logits with `allowed` before
temperature and top-p, so the nucleus is taken among legal tokens only.

- `RemiGrammar` (miditok REMI of task=music, and the pop-piano REMI events of task=pop_piano):
  a piece starts with a Bar; a Bar is followed by an optional TimeSig, then positions; a position
  (Position_p / Beat_p) is followed by notes (Pitch, Velocity, Duration, in that order) or chord/tempo
  events; positions never go back within a bar and stay inside the bar's length (its time
  signature); a new Bar only once the piece has a note, so every sample has notes.
- `MidiLikeGrammar` (miditok MIDI-like with programs, task=groove): Program_p precedes each
  NoteOn/NoteOff (DrumOn/DrumOff for program -1), NoteOn is followed by its Velocity, a NoteOff only
  for a sounding note, time moves by positive TimeShifts only; `finish` releases the notes still on.

Tokens a prefix (a prompt) holds outside the grammar are accepted: `advance` never raises, so a
prompt taken from real data is always usable.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Protocol, Sequence

import numpy as np


class Grammar(Protocol):
    vocab_size: int

    def start(self) -> object: ...

    def allowed(self, state) -> np.ndarray: ...

    def advance(self, state, token: int) -> None: ...

    def finish(self, state) -> list[int]: ...


def replay(grammar: Grammar, ids: Sequence[int]):
    """The grammar state after `ids`."""
    state = grammar.start()
    for i in ids:
        grammar.advance(state, int(i))
    return state


# -- REMI ---------------------------------------------------------------------------------------

BAR, TIMESIG, POSITION, PITCH, VELOCITY, DURATION, META, OTHER = range(8)

# token-name prefixes of the two REMI flavours (miditok; the pop-piano events of the paper)
_REMI_KINDS = (
    ("Bar_", BAR),
    ("TimeSig_", TIMESIG),
    ("Position_", POSITION),
    ("Beat_", POSITION),
    ("Note_Pitch_", PITCH),
    ("Pitch_", PITCH),
    ("Note_Velocity_", VELOCITY),
    ("Velocity_", VELOCITY),
    ("Note_Duration_", DURATION),
    ("Duration_", DURATION),
    ("Chord_", META),
    ("Tempo_", META),
)


@dataclass
class RemiState:
    expect: str = "bar"  # bar | after_bar | after_sig | event | velocity | duration | after_note
    position: int = -1  # current position in the bar (-1: none yet)
    bar_len: int = 0  # positions in the current bar
    has_note: bool = False


class RemiGrammar:
    def __init__(self, vocab: Sequence[str]) -> None:
        self.vocab_size = len(vocab)
        self.kind = np.full(len(vocab), OTHER, dtype=np.int64)
        self.value = np.full(len(vocab), -1, dtype=np.int64)
        self.bar_positions = np.zeros(len(vocab), dtype=np.int64)  # TimeSig: positions in its bar
        for i, tok in enumerate(vocab):
            for prefix, kind in _REMI_KINDS:
                if tok.startswith(prefix):
                    self.kind[i] = kind
                    if kind == POSITION:
                        self.value[i] = int(tok[len(prefix) :])
                    break
        if not all((self.kind == k).any() for k in (BAR, POSITION, PITCH, DURATION)):
            raise ValueError("RemiGrammar: the vocabulary needs Bar, Position/Beat, Pitch and Duration tokens")
        positions = int(self.value[self.kind == POSITION].max()) + 1
        sigs = [(i, re.fullmatch(r"TimeSig_(\d+)/(\d+)", vocab[i])) for i in np.flatnonzero(self.kind == TIMESIG)]
        numerators = [int(m.group(1)) for _, m in sigs if m]
        # miditok counts positions per beat of the signature's denominator: 4/4 -> 4 * res, 12/8 -> 12 * res
        self.per_beat = positions // max(numerators) if numerators else 0
        for i, m in sigs:
            self.bar_positions[i] = int(m.group(1)) * self.per_beat if m else positions
        self.default_bar_len = 4 * self.per_beat if numerators else positions  # 4/4 until a TimeSig
        self.has_velocity = bool((self.kind == VELOCITY).any())
        self.masks = {k: self.kind == k for k in range(8)}

    def start(self) -> RemiState:
        return RemiState(bar_len=self.default_bar_len)

    def positions(self, lo: int, hi: int) -> np.ndarray:
        return self.masks[POSITION] & (self.value >= lo) & (self.value < hi)

    def allowed(self, state: RemiState) -> np.ndarray:
        m = self.masks
        e = state.expect
        if e == "bar":
            return m[BAR].copy()
        if e == "velocity":
            return m[VELOCITY].copy()
        if e == "duration":
            return m[DURATION].copy()
        if e in ("after_bar", "after_sig"):  # TimeSig once, then a position; an empty bar once the piece has a note
            out = self.positions(0, state.bar_len) | (m[TIMESIG] if e == "after_bar" else False)
        elif e == "event":  # right after a position: a note or a chord/tempo at this position
            out = m[PITCH] | m[META]
        else:  # after a note or a chord/tempo: more at this position, a later one, a new bar
            out = m[PITCH] | m[META] | self.positions(max(state.position, 0), state.bar_len)
        if state.has_note:
            out = out | m[BAR]
        return out

    def advance(self, state: RemiState, token: int) -> None:
        kind = int(self.kind[token]) if 0 <= token < self.vocab_size else OTHER
        if kind == BAR:
            state.expect, state.position = "after_bar", -1
        elif kind == TIMESIG:
            state.bar_len = int(self.bar_positions[token])
            if state.expect == "after_bar":
                state.expect = "after_sig"
        elif kind == POSITION:
            state.position, state.expect = int(self.value[token]), "event"
        elif kind == PITCH:
            state.expect = "velocity" if self.has_velocity else "duration"
        elif kind == VELOCITY:
            state.expect = "duration"
        elif kind == DURATION:
            state.expect, state.has_note = "after_note", True
        elif kind == META:
            state.expect = "after_note"

    def finish(self, state: RemiState) -> list[int]:
        """Ids that complete a sample: the note cut after its Pitch or Velocity, or a first note when
        the sample has none yet (a middle pitch and velocity, the shortest duration, the first position)."""
        out: list[int] = []
        state = RemiState(**vars(state))
        while not state.has_note or state.expect in ("velocity", "duration"):
            allowed = self.allowed(state)
            for kind in (DURATION, VELOCITY, PITCH, POSITION, BAR):
                ids = np.flatnonzero(allowed & self.masks[kind])
                if ids.size:
                    token = int(ids[len(ids) // 2] if kind in (PITCH, VELOCITY) else ids[0])
                    break
            out.append(token)
            self.advance(state, token)
        return out


# -- MIDI-like ----------------------------------------------------------------------------------


@dataclass
class MidiLikeState:
    expect: str = "program"  # program | on_off | velocity | any
    program: int = 0
    sounding: set = field(default_factory=set)  # (program, pitch) of notes on
    has_note: bool = False


class MidiLikeGrammar:
    def __init__(self, vocab: Sequence[str]) -> None:
        self.vocab_size = len(vocab)
        self.index = {t: i for i, t in enumerate(vocab)}
        pref = np.array([t.split("_", 1)[0] for t in vocab])
        kinds = ("Program", "NoteOn", "NoteOff", "DrumOn", "DrumOff", "Velocity", "TimeShift")
        self.is_ = {p: pref == p for p in kinds}
        if not self.is_["Program"].any() or not self.is_["NoteOn"].any():
            raise ValueError("MidiLikeGrammar: the vocabulary needs Program and NoteOn tokens")
        self.vocab = list(vocab)

    def start(self) -> MidiLikeState:
        return MidiLikeState()

    def _value(self, token: int) -> int:
        return int(self.vocab[token].split("_", 1)[1])

    def allowed(self, state: MidiLikeState) -> np.ndarray:
        s = self.is_
        if state.expect == "program":  # the first token
            return s["Program"].copy()
        if state.expect == "velocity":
            return s["Velocity"].copy()
        if state.expect == "on_off":
            drum = state.program == -1
            out = (s["DrumOn"] if drum else s["NoteOn"]).copy()
            off = "DrumOff" if drum else "NoteOff"
            for prog, pitch in state.sounding:
                if prog == state.program and f"{off}_{pitch}" in self.index:
                    out[self.index[f"{off}_{pitch}"]] = True
                    out[self.index[f"{'DrumOn' if drum else 'NoteOn'}_{pitch}"]] = False  # no re-trigger
            return out
        return s["Program"] | s["TimeShift"]  # after a velocity, a NoteOff or a TimeShift

    def advance(self, state: MidiLikeState, token: int) -> None:
        if not 0 <= token < self.vocab_size:
            return
        kind = self.vocab[token].split("_", 1)[0]
        if kind == "Program":
            state.program, state.expect = self._value(token), "on_off"
        elif kind in ("NoteOn", "DrumOn"):
            state.sounding.add((state.program, self._value(token)))
            state.expect = "velocity"
        elif kind in ("NoteOff", "DrumOff"):
            if (state.program, self._value(token)) in state.sounding:
                state.sounding.discard((state.program, self._value(token)))
                state.has_note = True
            state.expect = "any"
        elif kind in ("Velocity", "TimeShift"):
            state.expect = "any"

    def finish(self, state: MidiLikeState) -> list[int]:
        """Complete a sample: a first note when it has none, the cut velocity, then the shortest TimeShift
        and a NoteOff/DrumOff for every note still sounding (a cut note lasts one step)."""
        out: list[int] = []
        state = MidiLikeState(state.expect, state.program, set(state.sounding), state.has_note)

        def add(token: str) -> None:
            out.append(self.index[token])
            self.advance(state, self.index[token])

        if state.expect == "program":
            add("Program_0")
        if state.expect == "on_off" and not state.sounding and not state.has_note:
            add("DrumOn_36" if state.program == -1 else "NoteOn_60")
        if state.expect == "velocity":
            vel = np.flatnonzero(self.is_["Velocity"])
            add(self.vocab[int(vel[len(vel) // 2])])
        if state.sounding:
            add(self.vocab[int(np.flatnonzero(self.is_["TimeShift"])[0])])
            for prog, pitch in sorted(state.sounding):
                add(f"Program_{prog}")
                add(f"{'DrumOff' if prog == -1 else 'NoteOff'}_{pitch}")
        return out


def grammar_for(vocab: Sequence[str]) -> Grammar:
    """The grammar of a music vocabulary, recognised by its token names."""
    names = set(vocab)
    if any(t.startswith("NoteOn_") for t in names) and any(t.startswith("Program_") for t in names):
        return MidiLikeGrammar(vocab)
    if "Bar_None" in names and any(t.startswith(("Position_", "Beat_")) for t in names):
        return RemiGrammar(vocab)
    raise ValueError(
        "no sampling grammar for this vocabulary (known: REMI with Bar/Position or Beat tokens, "
        "MIDI-like with Program/NoteOn tokens); pass grammar=false to sample without one"
    )
