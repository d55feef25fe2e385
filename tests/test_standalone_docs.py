"""The repository stands alone: no file cites notes that are not in it (a research folder's *.md, or
a sibling "shared" directory). Facts a maintainer needs live in docs/ (spe.md, data.md, ...) or are
cited from the paper and the upstream repositories."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = ("src", "conf", "docs", "bench", "scripts", "tests", "experiments", "notebooks", ".ci")
SUFFIXES = {".py", ".md", ".yaml", ".yml", ".ipynb", ".sh", ".txt", ".toml", ""}
# a research folder's <name>.md, not preceded by a word or a dash (google-research/... is a
# repository), and a sibling shared folder; the pattern is split so that this file does not match it
OUTSIDE = re.compile(r"(?<![\w-])" + "research" + r"/\w+\.md|\.\./" + "shared" + "/")


def outside_citations(root: Path = ROOT) -> list[str]:
    files = [root / "README.md", root / "Makefile", root / "pyproject.toml", root / "run.py"]
    for folder in FOLDERS:
        files += [p for p in (root / folder).rglob("*") if p.is_file() and p.suffix in SUFFIXES]
    bad = []
    for path in files:
        if not path.is_file():
            continue
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            if OUTSIDE.search(line):
                bad.append(f"{path.relative_to(root)}:{number}: {line.strip()}")
    return bad


def test_nothing_cites_notes_outside_the_repository():
    bad = outside_citations()
    assert not bad, "cite docs/ or the upstream source instead:\n" + "\n".join(bad)


def test_the_scan_sees_a_citation(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.md").write_text("see google-research/long-range-arena\n")
    assert outside_citations(tmp_path) == []
    (tmp_path / "docs" / "b.md").write_text("as " + "research" + "/spe.md §1.2 says\n")
    (tmp_path / "README.md").write_text("../" + "shared/design.md\n")
    assert len(outside_citations(tmp_path)) == 2
