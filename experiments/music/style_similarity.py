"""Style similarity of continuations per time segment, per positional scheme (the paper's Groove2Groove
measure, here on the chorales): does the style hold beyond the training length?

For one seed of every scheme in a sweep, spelab.generate continues the first PROMPT tokens of the first
PIECES test chorales to PROMPT + NEW tokens (NEW samples each, temperature 0.6 as in the paper's groove
evaluation) and spelab.music.metrics compares each quarter of the continuation with the whole chorale.

    PYTHONPATH=src python experiments/music/style_similarity.py logs/sweeps/SWEEP experiments/music/results/SWEEP
        [pieces=5 samples=2 prompt=32 new=224 seed_dir=seed0 temperature=0.6]

Writes OUT/style_similarity.json and OUT/style_similarity.md (mean ± std over pieces x samples), with
the samples' note density, pitch range and pitch-class entropy. Samples already written are reused.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from spelab import generate as gen
from spelab.evaluate import find_checkpoints


BASIC = ("note_density", "pitch_range", "pitch_class_entropy")  # per sample (prompt included)


def main(argv: list[str]) -> None:
    sweep, out = Path(argv[0]), Path(argv[1])
    opts = {"pieces": 5, "samples": 2, "prompt": 32, "new": 224, "seed_dir": "seed0", "temperature": 0.6}
    for arg in argv[2:]:
        key, _, value = arg.partition("=")
        if key not in opts:
            raise SystemExit(f"unknown option {key!r}; allowed: {', '.join(opts)}")
        opts[key] = type(opts[key])(value)
    results: dict[str, dict[str, list[list[float]]]] = {}
    for ckpt in find_checkpoints(sweep):
        run_dir = ckpt.parent.parent
        if not run_dir.name.startswith(str(opts["seed_dir"])):
            continue
        label = run_dir.parent.name
        per = results.setdefault(label, {})
        for piece in range(int(opts["pieces"])):
            gdir = out / "style_samples" / label / f"piece{piece}"
            if not (gdir / gen.METRICS_JSON).is_file():  # a rerun keeps the samples already written
                gen.main(
                    [
                        f"ckpt={ckpt}",
                        f"prompt_piece={piece}",
                        f"prompt_tokens={opts['prompt']}",
                        f"num_tokens={opts['new']}",
                        f"num_samples={opts['samples']}",
                        f"temperature={opts['temperature']}",
                        f"output_dir={gdir}",
                        "wandb=false",
                        "device=cpu",
                    ]
                )
            for sample in json.loads((gdir / gen.METRICS_JSON).read_text())["samples"]:
                for key in ("style_time_pitch_diff", "style_onset_duration"):
                    per.setdefault(key, []).append([np.nan if v is None else v for v in sample[key]])
                for key in BASIC:
                    per.setdefault(key, []).append([np.nan if sample[key] is None else sample[key]])
    # the real continuations (the chorales' own next tokens): what a perfect model would score
    from spelab.evaluate import build_datamodule
    from spelab.music.metrics import notes_of
    from spelab.music.samples import sample_metrics
    from spelab.tasks.language_model import find_run_config

    dm = build_datamodule(find_run_config(ckpt)[0])
    per = results.setdefault("test chorales (reference)", {})
    for piece in range(int(opts["pieces"])):
        ids = [int(x) for x in dm.split_ids("test")[piece]]
        n = int(opts["prompt"]) + int(opts["new"])
        m = sample_metrics(
            notes_of(dm.ids_to_score(ids[:n])),
            notes_of(dm.ids_to_score(ids[: int(opts["prompt"])])),
            notes_of(dm.ids_to_score(ids)),
        )
        for key in ("style_time_pitch_diff", "style_onset_duration"):
            per.setdefault(key, []).append([np.nan if v is None else v for v in m[key]])
        for key in BASIC:
            per.setdefault(key, []).append([np.nan if m[key] is None else m[key]])
    summary = {
        label: {
            key: {"mean": np.nanmean(np.array(v), 0).tolist(), "std": np.nanstd(np.array(v), 0).tolist(), "n": len(v)}
            for key, v in per.items()
        }
        for label, per in sorted(results.items())
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "style_similarity.json").write_text(json.dumps({"options": opts, "results": summary}, indent=1) + "\n")
    lines = ["| run | profile | n | 0-25 % | 25-50 % | 50-75 % | 75-100 % |", "|---|---|---|---|---|---|---|"]
    for label, per in summary.items():
        for key, s in per.items():
            if key in BASIC:
                continue
            cells = " | ".join(f"{m:.3f} ± {d:.3f}" for m, d in zip(s["mean"], s["std"]))
            lines.append(f"| {label} | {key.removeprefix('style_')} | {s['n']} | {cells} |")
    lines += ["", "| run | n | " + " | ".join(BASIC) + " |", "|---|---|" + "---|" * len(BASIC)]
    for label, per in summary.items():
        lines.append(
            f"| {label} | {per[BASIC[0]]['n']} | "
            + " | ".join(f"{per[k]['mean'][0]:.2f} ± {per[k]['std'][0]:.2f}" for k in BASIC)
            + " |"
        )
    (out / "style_similarity.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main(sys.argv[1:])
