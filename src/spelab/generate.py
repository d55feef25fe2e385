"""Sample music from a trained causal LM and write MIDI files.

    python -m spelab.generate ckpt=PATH num_tokens=N output_dir=DIR [temperature=1.2 top_p=0.9
        num_samples=2 prompt_piece=0 prompt_tokens=64 seed=0 audio=true grammar=true]

Sampling is grammar-constrained (spelab.data.music.grammar): any checkpoint, trained or not, gives
MIDI with complete notes in time order. Per sample: .mid, .tokens.json, a piano roll .png and, with
audio=true, a FluidSynth rendering; metrics.json holds the music metrics (spelab.music.metrics).

Decoding is recurrent through `Transformer.step`: O(1) per token for linear and Performer attention
(their state is a running sum), a key/value cache for softmax. One positional code is drawn for the
whole target length (prompt + new tokens) and Performer features stay fixed (eval mode), so every
step sees the same positional encoding as one parallel pass over the final sequence would.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from spelab.data.music.grammar import Grammar, grammar_for, replay
from spelab.music.audio import FORMATS
from spelab.music.audio import check as check_audio
from spelab.music.samples import METRICS_JSON, write_samples  # noqa: F401 (METRICS_JSON: for callers)

log = logging.getLogger(__name__)


@dataclass
class GenerateConfig:
    ckpt: str | None = None
    num_tokens: int = 512  # new tokens per sample
    output_dir: str = "generated"
    num_samples: int = 1
    temperature: float = 1.2  # the paper's pop-piano setting (groove: 0.6)
    top_p: float = 0.9  # nucleus sampling; 1.0 = plain sampling
    grammar: bool = True  # mask tokens that cannot follow (valid MIDI from any checkpoint)
    prompt_piece: int | None = None  # index of a test piece whose start is the prompt (continuation)
    prompt_tokens: int = 64  # prompt length taken from that piece
    split: str = "test"
    seed: int = 0
    device: str = "auto"
    data_dir: str | None = None
    audio: bool = False  # also render .wav/.flac with FluidSynth (make audio-deps)
    audio_format: str = "wav"  # wav | flac
    soundfont: str | None = None  # a General MIDI .sf2; default: $SPELAB_SOUNDFONT, then Debian's
    wandb: bool = True
    wandb_online: bool = False


def filter_logits(
    logits: torch.Tensor,
    temperature: float,
    top_p: float,
    banned: Sequence[int] = (),
    allowed: torch.Tensor | None = None,
) -> torch.Tensor:
    """Temperature, banned ids, a grammar's (B, V) `allowed` mask and nucleus (top-p) filtering of (B, V)
    logits; returns log-probabilities. The mask comes first, so the nucleus holds legal tokens only."""
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    if not 0 < top_p <= 1:
        raise ValueError(f"top_p must be in (0, 1], got {top_p}")
    logits = logits.to(torch.promote_types(logits.dtype, torch.float32)) / temperature
    if banned:
        logits[:, list(banned)] = float("-inf")
    if allowed is not None:
        logits = logits.masked_fill(~allowed.to(logits.device), float("-inf"))
    if top_p < 1.0:
        sorted_logits, order = logits.sort(dim=-1, descending=True)
        probs = sorted_logits.softmax(-1)
        # drop a token when the mass of the tokens before it already reaches top_p (keeps >= 1)
        drop = probs.cumsum(-1) - probs >= top_p
        sorted_logits[drop] = float("-inf")
        logits = torch.full_like(logits, float("-inf")).scatter(-1, order, sorted_logits)
    return logits.log_softmax(-1)


@torch.no_grad()
def sample(
    task,
    prompt: torch.Tensor,
    num_tokens: int,
    temperature: float = 1.0,
    top_p: float = 1.0,
    banned: Sequence[int] = (0,),
    generator: torch.Generator | None = None,
    grammar: Grammar | None = None,
) -> torch.Tensor:
    """Continue `prompt` (B, P >= 1) by `num_tokens` tokens, recurrently; returns (B, P + num_tokens).

    With a `grammar` (spelab.data.music.grammar) only the tokens it allows after each prefix can be
    drawn, so every row decodes to valid music."""
    model = task.model.eval()
    task.head.eval()
    batch, plen = prompt.shape
    if plen < 1:
        raise ValueError("sample: the prompt needs at least one token")
    device = prompt.device
    code = model.draw_code(plen + num_tokens, device=device)  # one code for the whole target length
    state = model.init_state(batch, device=device)
    out = [prompt]
    for t in range(plen - 1):  # feed the prompt
        _, state = model.step(prompt[:, t], state, code=code)
    token = prompt[:, -1]
    states = [replay(grammar, row) for row in prompt.tolist()] if grammar is not None else None
    for _ in range(num_tokens):
        hidden, state = model.step(token, state, code=code)
        allowed = None
        if states is not None:
            allowed = torch.from_numpy(np.stack([grammar.allowed(st) for st in states]))
        logp = filter_logits(task.head(hidden), temperature, top_p, banned, allowed)
        token = torch.multinomial(logp.exp(), 1, generator=generator)[:, 0]
        if states is not None:
            for st, tok in zip(states, token.tolist()):
                grammar.advance(st, tok)
        out.append(token[:, None])
    return torch.cat(out, dim=1)


@torch.no_grad()
def start_tokens(dm) -> list[int]:
    """Unconditional start: the most common first token of the training pieces (Bar for REMI)."""
    firsts = [int(ids[0]) for ids in dm.split_ids("train") if len(ids)]
    return [max(set(firsts), key=firsts.count)]


def generate(gcfg: GenerateConfig) -> list[Path]:
    from spelab.evaluate import build_datamodule
    from spelab.run_loading import find_run_config, load_language_model

    if not gcfg.ckpt:
        raise ValueError("generate: give ckpt=PATH (a checkpoint of a trained music run)")
    if gcfg.num_tokens < 1 or gcfg.num_samples < 1:
        raise ValueError(
            f"generate: num_tokens and num_samples must be >= 1, got {gcfg.num_tokens}, {gcfg.num_samples}"
        )
    device = torch.device(
        "cuda"
        if gcfg.device == "auto" and torch.cuda.is_available()
        else ("cpu" if gcfg.device == "auto" else gcfg.device)
    )
    cfg, _ = find_run_config(gcfg.ckpt)
    if cfg is None:
        raise FileNotFoundError(f"no .hydra/config.yaml above {gcfg.ckpt}: generate needs a run written by run.py")
    dm = build_datamodule(cfg, gcfg.data_dir)
    if not hasattr(dm, "write_midi"):
        raise ValueError(f"generate: task {cfg.task.name!r} is not a music task (no MIDI decoding)")
    if gcfg.audio_format not in FORMATS:
        raise ValueError(f"generate: audio_format={gcfg.audio_format!r}; allowed: {', '.join(FORMATS)}")
    if gcfg.audio:
        check_audio(gcfg.soundfont)  # before any sampling: missing FluidSynth fails in one line
    task = load_language_model(gcfg.ckpt, map_location=device)
    torch.manual_seed(gcfg.seed)
    generator = torch.Generator(device=device).manual_seed(gcfg.seed)
    if gcfg.prompt_piece is not None:
        pieces = dm.split_ids(gcfg.split)
        if not 0 <= gcfg.prompt_piece < len(pieces):
            raise ValueError(f"prompt_piece={gcfg.prompt_piece}; allowed: 0..{len(pieces) - 1} ({gcfg.split} split)")
        prompt_ids = [int(x) for x in pieces[gcfg.prompt_piece][: gcfg.prompt_tokens]]
    else:
        prompt_ids = start_tokens(dm)
    model_len = task.model.max_len
    if (
        task.model.absolute is not None
        and hasattr(task.model.absolute, "weight")
        and len(prompt_ids) + gcfg.num_tokens > model_len
    ):
        raise ValueError(f"num_tokens={gcfg.num_tokens}: a learned absolute encoding has only {model_len} positions")
    prompt = torch.tensor([prompt_ids] * gcfg.num_samples, dtype=torch.long, device=device)
    reference = dm.split_ids(gcfg.split)[gcfg.prompt_piece] if gcfg.prompt_piece is not None else None
    grammar = grammar_for(dm.vocab) if gcfg.grammar else None
    ids = sample(
        task,
        prompt,
        gcfg.num_tokens,
        gcfg.temperature,
        gcfg.top_p,
        banned=(dm.pad_id,),
        generator=generator,
        grammar=grammar,
    )
    rows = ids.tolist()
    completions = [grammar.finish(replay(grammar, row)) if grammar is not None else [] for row in rows]
    records = write_samples(
        dm,
        rows,
        completions,
        len(prompt_ids),
        Path(gcfg.output_dir),
        reference,
        gcfg.audio,
        gcfg.audio_format,
        gcfg.soundfont,
    )
    paths = [r["midi"] for r in records]
    if gcfg.wandb:
        try:
            log_midi_to_wandb(records, gcfg, Path(gcfg.output_dir))
        except Exception as err:  # tracking must never lose the samples
            log.warning("W&B logging failed: %s", err)
    print("wrote " + ", ".join(str(p) for p in paths))
    return paths


def log_midi_to_wandb(records: list[dict], gcfg: GenerateConfig, out: Path) -> None:
    """The MIDI files as an artifact; per sample its piano roll and audio; the metrics' means."""
    import wandb

    from spelab.music.metrics import summarise

    run = wandb.init(
        project="spe-music",
        job_type="generate",
        dir=str(out),
        mode="online" if gcfg.wandb_online else "offline",
        config={k: v for k, v in vars(gcfg).items()},
        reinit="finish_previous",
    )  # the bool form is deprecated (a warning per run)
    artifact = wandb.Artifact("generated-midi", type="midi")
    for r in records:
        artifact.add_file(str(r["midi"]))
    run.log_artifact(artifact)
    logged: dict[str, Any] = {f"generate/{k}": v for k, v in summarise([r["metrics"] for r in records]).items()}
    for r in records:
        name = r["midi"].stem
        if r["image"] is not None:
            logged[f"generate/{name}/piano_roll"] = wandb.Image(str(r["image"]), caption=name)
        if r["audio"] is not None:
            logged[f"generate/{name}/audio"] = wandb.Audio(str(r["audio"]), caption=name)
    run.log(logged)
    run.finish()


def main(argv: Sequence[str] | None = None) -> list[Path]:
    from spelab.cli import run_tool

    return run_tool(generate, GenerateConfig, argv, "spelab.generate")  # one-line errors for a wrong path or checkpoint


if __name__ == "__main__":
    main()
