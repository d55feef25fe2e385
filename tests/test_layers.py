"""Import direction between the layers of src/spelab, read from the source (AST), not by importing.

nn/ is pure torch: it imports no other spelab package and none of Lightning, Hydra, OmegaConf, W&B.
data/ builds batches: of spelab it imports only itself and spelab.errors (never training, tasks or
reliability), and of the frameworks only Lightning (LightningDataModule).
No module takes a private (underscore) name from another module. docs/architecture.md shows the layers.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
FRAMEWORKS = {"lightning", "pytorch_lightning", "hydra", "omegaconf", "wandb", "submitit"}

# spelab packages each layer may import (besides itself); anything else from spelab is refused
ALLOWED = {
    "nn": set(),
    "data": {"errors"},
}
FRAMEWORKS_ALLOWED = {"nn": set(), "data": {"lightning"}}
# (importing module, name): private names still taken across modules, each with the issue that ends it
KNOWN_PRIVATE: set[tuple[str, str]] = set()  # (module, private name) pairs still allowed: none


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> list[tuple[int, str, list[str]]]:
    """(line, absolute module, names it binds) for every import statement of a file."""
    name = _module_name(path)
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            # `import a.b as c` binds c; `import a.b` binds a (no names)
            found += [(node.lineno, alias.name, [alias.asname] if alias.asname else []) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the importing package
                base = package[: len(package) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            found.append((node.lineno, module, [alias.name for alias in node.names]))
    return found


def layer_violations(layer: str) -> list[str]:
    allowed = {f"spelab.{p}" for p in ALLOWED[layer] | {layer}}
    bad = []
    for path in sorted((SRC / "spelab" / layer).rglob("*.py")):
        for line, module, _ in imports(path):
            top = module.split(".")[0]
            inside = any(module == a or module.startswith(a + ".") for a in allowed)
            if top in FRAMEWORKS - FRAMEWORKS_ALLOWED[layer] or (top == "spelab" and not inside):
                bad.append(f"{path.relative_to(SRC)}:{line} imports {module}")
    return bad


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_layer_imports_only_what_it_may(layer):
    bad = layer_violations(layer)
    assert not bad, f"spelab.{layer} may import only {sorted(ALLOWED[layer]) or 'itself'} of spelab:\n" + "\n".join(bad)


def private_uses(path: Path) -> list[tuple[int, str]]:
    """(line, what) for each private name this file takes from another spelab module: imported by name
    (`from spelab.x import _y`) or reached through an imported name (`mod._y`, `Class._y`)."""
    name = _module_name(path)
    bound, found = set(), []
    for line, module, names in imports(path):
        if not module.startswith(("spelab", "hydra_plugins")) or module == name:
            continue
        if not names:  # `import spelab.x [as y]`: the top name or the alias
            bound.add(module.split(".")[0])
        for imported in names:
            bound.add(imported)
            if imported.startswith("_"):
                found.append((line, f"{module}.{imported}"))
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
            base = node.value
            while isinstance(base, ast.Attribute):
                base = base.value
            if isinstance(base, ast.Name) and base.id in bound:
                found.append((node.lineno, f"{ast.unparse(node.value)}.{node.attr}"))
    return found


def test_no_private_names_across_modules():
    bad = []
    for path in sorted(SRC.rglob("*.py")):
        name = _module_name(path)
        for line, what in private_uses(path):
            if (name, what.rsplit(".", 1)[1]) not in KNOWN_PRIVATE:
                bad.append(f"{path.relative_to(SRC)}:{line} takes {what}")
    assert not bad, "make the name public where it belongs, or move it:\n" + "\n".join(bad)


def test_the_checks_see_a_forbidden_import(tmp_path, monkeypatch):
    """The walker itself: data importing reliability, nn importing lightning or training code, and a
    private name taken from another module are all caught."""
    cases = (
        ("data", "from spelab.reliability.resume_state import RngStateCallback\n"),
        ("nn", "import lightning.pytorch as pl\n"),
        ("nn", "from ...train import train\n"),  # spelab.nn.sub -> spelab.train
    )
    for i, (layer, line) in enumerate(cases):
        root = tmp_path / str(i) / "src"
        (root / "spelab" / layer / "sub").mkdir(parents=True)
        (root / "spelab" / layer / "sub" / "bad.py").write_text(line)
        monkeypatch.setitem(globals(), "SRC", root)
        assert layer_violations(layer), line
    root = tmp_path / "private" / "src"
    (root / "spelab").mkdir(parents=True)
    monkeypatch.setitem(globals(), "SRC", root)
    for line, taken in (
        ("from spelab.validation import _resolve_leaves\n", "_resolve_leaves"),
        ("from spelab.nn.positional.rope import RotaryEmbedding\nRotaryEmbedding._rotate\n", "_rotate"),
        ("import spelab.validation as v\nv._walk\n", "_walk"),
    ):
        (root / "spelab" / "a.py").write_text(line)
        with pytest.raises(AssertionError, match=taken):
            test_no_private_names_across_modules()
