"""The package's layers, as the README's "Layout" lists them: each module imports only
from its own layer and the layers below it, so the kernel knows nothing of uWSGI, the
subsystems see their instance only through ``server.interface``, and nothing below the
harness imports the harness. Imports made only for type checking count too, except
those naming a harness class or a module of the importer's own part in an annotation."""

from __future__ import annotations

import ast
from pathlib import Path

import simuwsgi

PACKAGE = Path(simuwsgi.__file__).parent

#: The layer of each part of the package, lowest first. The server model is below the
#: subsystems, except the two modules made of them: the master (which creates them)
#: and the ``uwsgi`` facade (which exposes their functions).
LAYERS = {
    "_errors": 0, "_core": 1, "protocol": 1, "server": 2, "subsystems": 3,
    "server.master": 4, "server.facade": 4, "net": 5, "network": 5, "modes": 6, "driver": 6,
}
HARNESS = 7  # every other top-level module: simulation, cluster, serve, cli, ...


def _layer(parts: list[str]) -> int:
    """The layer of the module ``simuwsgi.<parts>``."""
    for n in (2, 1):
        name = ".".join(parts[:n]).removesuffix(".py")
        if len(parts) >= n and name in LAYERS:
            return LAYERS[name]
    return HARNESS


def _imports(path: Path) -> list[tuple[str, bool]]:
    """(absolute module imported, only under ``if TYPE_CHECKING``) for each import."""
    module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    if path.name == "__init__.py":
        module = package
    tree = ast.parse(path.read_text())
    typing_only: set[int] = set()
    for node in ast.walk(tree):
        if (isinstance(node, ast.If) and isinstance(node.test, ast.Name)
                and node.test.id == "TYPE_CHECKING"):
            typing_only.update(id(n) for n in ast.walk(node))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            names = [target] if node.module else [f"{target}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            continue
        found += [(n, id(node) in typing_only) for n in names if n.startswith("simuwsgi.")]
    return found


def _violations() -> list[str]:
    out = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE)
        if rel.parts[0] == "stubs":
            continue
        mine = _layer([p.removesuffix(".py") for p in rel.parts])
        for target, typing_only in _imports(path):
            theirs = _layer(target.split(".")[1:])
            same_part = target.split(".")[1] == rel.parts[0]
            if rel.parts[0] == "subsystems" and target.startswith("simuwsgi.server.master"):
                out.append(f"{rel}: imports {target} (use simuwsgi.server.interface)")
            elif theirs > mine and not (typing_only and (theirs == HARNESS or same_part)):
                out.append(f"{rel} (layer {mine}): imports {target} (layer {theirs})")
            elif theirs == HARNESS and mine < HARNESS and not typing_only:
                out.append(f"{rel}: imports the harness module {target}")
    return out


def test_every_import_goes_down_the_layers() -> None:
    assert _violations() == []


def test_the_check_sees_a_violation(tmp_path, monkeypatch) -> None:
    """The checker itself: a subsystem importing the master is caught."""
    fake = tmp_path / "simuwsgi"
    (fake / "subsystems").mkdir(parents=True)
    (fake / "subsystems" / "x.py").write_text("from ..server.master import Instance\n")
    (fake / "_core").mkdir()
    (fake / "_core" / "k.py").write_text("from ..simulation import Simulation\n")
    monkeypatch.setattr(__import__(__name__), "PACKAGE", fake)
    assert sorted(_violations()) == [
        "_core/k.py (layer 1): imports simuwsgi.simulation (layer 7)",
        "subsystems/x.py: imports simuwsgi.server.master (use simuwsgi.server.interface)",
    ]
