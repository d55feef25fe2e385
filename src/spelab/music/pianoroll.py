"""A piano-roll image of a piece (one bar per note, time in beats, MIDI pitch), for W&B and reports."""

from __future__ import annotations

from pathlib import Path

from spelab.music.metrics import Notes


def piano_roll(notes: Notes, path: str | Path, title: str = "", prompt_end: float | None = None) -> Path:
    """PNG of `notes`; drums in grey; a dashed line where the prompt ends."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 3))
    for drum, colour in ((False, "tab:blue"), (True, "grey")):
        sel = notes.drum == drum
        if sel.any():
            ax.barh(
                notes.pitch[sel],
                notes.duration[sel],
                left=notes.onset[sel],
                height=0.8,
                color=colour,
                edgecolor="none",
                label="drums" if drum else None,
            )
    if prompt_end is not None:
        ax.axvline(prompt_end, color="k", linestyle="--", linewidth=1)
    ax.set_xlabel("time (beats)")
    ax.set_ylabel("pitch")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
