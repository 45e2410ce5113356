"""The import order of scpo's layers (README, Development) holds for every import in src/scpo.

Every ``import`` statement is read from the source (also those inside functions; only imports
under ``if TYPE_CHECKING:`` are left out, they never run). A module may import modules of its own
layer group or of a lower one, never of a higher one. Independent rules on top:

* certify, reachability, audit and reports never import :mod:`scpo.tasks` (they consume the
  problem type; a run's task is rebuilt by :func:`scpo.runs.task_from_config`);
* only :mod:`scpo.cli` imports typer, and no library module calls ``print``;
* ``import scpo`` loads neither torch nor cvxpy (a subprocess checks ``sys.modules``).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "scpo"

# Lowest first. A module belongs to the first entry that is it or one of its parent packages.
LAYERS: list[tuple[str, ...]] = [
    ("scpo._version",),
    ("scpo.errors",),
    ("scpo.numerics",),
    ("scpo.evidence",),
    ("scpo._validate",),
    ("scpo.config",),
    ("scpo._io",),
    ("scpo.distributed",),
    ("scpo.plotting",),
    ("scpo.systems",),
    ("scpo.policies",),
    ("scpo._iterate",),
    ("scpo.projector",),
    ("scpo.baselines",),
    ("scpo.reachability",),
    ("scpo.certify",),
    ("scpo.tasks",),
    ("scpo.runs",),
    ("scpo.training",),
    ("scpo.audit",),
    ("scpo.reports",),
    ("scpo.bench",),
    ("scpo.cli",),
]
NO_TASKS = ("scpo.certify", "scpo.reachability", "scpo.audit", "scpo.reports")


def _module_name(path: Path) -> str:
    rel = path.relative_to(SRC.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _layer(module: str) -> int | None:
    for i, group in enumerate(LAYERS):
        for name in group:
            if module == name or module.startswith(name + "."):
                return i
    return None


def _is_type_checking(node: ast.If) -> bool:
    t = node.test
    return (isinstance(t, ast.Name) and t.id == "TYPE_CHECKING") or (isinstance(t, ast.Attribute) and t.attr == "TYPE_CHECKING")


def _imports(tree: ast.AST, module: str, is_package: bool):
    """(imported module, line) for every import that runs, resolving relative imports."""
    out = []

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                for sub in child.orelse:
                    visit(sub)
                continue
            if isinstance(child, ast.Import):
                out.extend((a.name, child.lineno) for a in child.names)
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base = module.split(".") if is_package else module.split(".")[:-1]
                    base = base[: len(base) - (child.level - 1)]
                    target = ".".join(base + ([child.module] if child.module else []))
                else:
                    target = child.module or ""
                # "from . import x" may import a submodule x
                for a in child.names:
                    out.append((f"{target}.{a.name}" if _layer(f"{target}.{a.name}") is not None and target else target, child.lineno))
            visit(child)

    visit(tree)
    return out


def _sources():
    for path in sorted(SRC.rglob("*.py")):
        module = _module_name(path)
        yield path, module, ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def test_every_module_has_a_declared_layer():
    missing = [m for _, m, _ in _sources() if m != "scpo" and _layer(m) is None]
    assert not missing, f"modules without a layer in LAYERS (add them, and to the README's Development section): {missing}"


def test_imports_run_one_way():
    bad = []
    for path, module, tree in _sources():
        own = _layer(module)
        if own is None:
            continue
        for target, line in _imports(tree, module, path.name == "__init__.py"):
            if not target.startswith("scpo"):
                continue
            if target == "scpo":
                bad.append(f"{path.relative_to(SRC.parent)}:{line} imports the package root 'scpo' (import the module that defines the name)")
                continue
            other = _layer(target)
            if other is not None and other > own:
                bad.append(f"{path.relative_to(SRC.parent)}:{line} ({LAYERS[own][0]}) imports {target} ({LAYERS[other][0]}), a higher layer")
    assert not bad, "imports going up the declared order:\n" + "\n".join(bad)


def test_consumers_of_the_problem_type_never_import_tasks():
    bad = []
    for path, module, tree in _sources():
        if not any(module == p or module.startswith(p + ".") for p in NO_TASKS):
            continue
        for target, line in _imports(tree, module, path.name == "__init__.py"):
            if target == "scpo.tasks" or target.startswith("scpo.tasks."):
                bad.append(f"{path.relative_to(SRC.parent)}:{line} imports {target}")
    assert not bad, "certify, reachability, audit and reports must not import scpo.tasks:\n" + "\n".join(bad)


def test_only_the_cli_prints_or_uses_typer():
    bad = []
    for path, module, tree in _sources():
        if module == "scpo.cli" or module.startswith("scpo.cli."):
            continue
        for target, line in _imports(tree, module, path.name == "__init__.py"):
            if target == "typer" or target.startswith("typer."):
                bad.append(f"{path.relative_to(SRC.parent)}:{line} imports typer")
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "print":
                bad.append(f"{path.relative_to(SRC.parent)}:{node.lineno} calls print()")
    assert not bad, "library modules must return results, not print:\n" + "\n".join(bad)


@pytest.mark.parametrize("heavy", ["torch", "cvxpy", "scipy", "matplotlib"])
def test_import_scpo_is_lazy(heavy):
    code = f"import sys, scpo, scpo.cli; print({heavy!r} in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False", f"'import scpo, scpo.cli' loaded {heavy}"
