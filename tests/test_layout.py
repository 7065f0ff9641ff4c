"""The package's layout (docs/abstractions.md, "Package map"): every import, at module level or
inside a function, goes to the same floor or a lower one; the packages' import graph has no
cycle; no python file of the repository is longer than 400 lines."""

from __future__ import annotations

import ast
import os
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = os.path.join(ROOT, "fcos_core")
MAX_LINES = 400

# Floors, lowest first: a package may import its own floor and the floors below it. Must match
# the table in docs/abstractions.md.
FLOORS: tuple[tuple[str, ...], ...] = (
    ("_build_info", "config", "layers", "structures"),
    ("utils",),
    ("data", "modeling", "solver"),
    ("checkpoint", "export", "engine", "__main__"),
)
FLOOR = {package: level for level, packages in enumerate(FLOORS) for package in packages}


def _package_of(path: str) -> str:
    """``fcos_core/data/build.py`` -> ``data``; ``fcos_core/__main__.py`` -> ``__main__``."""
    parts = os.path.relpath(path, PACKAGE).split(os.sep)
    return parts[0] if len(parts) > 1 else parts[0].removesuffix(".py")


def _imported_packages(path: str) -> list[tuple[str, int]]:
    """(fcos_core sub-package, line) of every absolute import in ``path``, at any depth."""
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read(), filename=path)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        for name in names:
            parts = name.split(".")
            if parts[0] == "fcos_core" and len(parts) > 1 and parts[1] in FLOOR:
                found.append((parts[1], node.lineno))
    return found


def _package_files() -> list[str]:
    files = []
    for folder, _, names in os.walk(PACKAGE):
        files += [os.path.join(folder, n) for n in names if n.endswith(".py")]
    return sorted(files)


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for path in _package_files():
        source = _package_of(path)
        for target, _ in _imported_packages(path):
            if target != source:
                graph.setdefault(source, set()).add(target)
    return graph


def test_every_package_has_a_floor():
    packages = {_package_of(p) for p in _package_files()} - {"__init__"}
    assert packages <= set(FLOOR), f"packages without a floor: {sorted(packages - set(FLOOR))}"


def test_no_import_goes_up_a_floor():
    upward = []
    for path in _package_files():
        source = _package_of(path)
        if source == "__init__":
            continue
        for target, line in _imported_packages(path):
            if FLOOR[target] > FLOOR[source]:
                where = os.path.relpath(path, ROOT)
                upward.append(f"{where}:{line}: {source} (floor {FLOOR[source]}) imports {target}")
    assert not upward, "imports to a higher floor:\n" + "\n".join(upward)


def _find_cycle(graph: dict[str, set[str]]) -> list[str]:
    """One cycle of ``graph`` as [a, b, ..., a], or [] when it is acyclic (depth-first search)."""
    state: dict[str, int] = {}  # 1 on the current path, 2 done
    path: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return []

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return []


def test_the_cycle_finder_finds_cycles():
    assert _find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _find_cycle({"a": {"b", "c"}, "b": {"c"}}) == []


def test_packages_import_each_other_without_cycles():
    assert _find_cycle(_graph()) == []


def test_the_upward_check_sees_function_level_imports(tmp_path, monkeypatch):
    fake = tmp_path / "fcos_core" / "data"
    fake.mkdir(parents=True)
    (fake / "x.py").write_text("def f():\n    from fcos_core.engine.trainer import do_train\n")
    monkeypatch.setattr(f"{__name__}.PACKAGE", str(tmp_path / "fcos_core"))
    assert _imported_packages(str(fake / "x.py")) == [("engine", 2), ("engine", 2)]
    with pytest.raises(AssertionError, match=r"data \(floor 2\) imports engine"):
        test_no_import_goes_up_a_floor()


def test_no_file_is_longer_than_the_limit():
    listed = subprocess.run(
        ["git", "ls-files", "*.py"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    if listed.returncode != 0:
        pytest.skip("not a git checkout")
    long = []
    for name in listed.stdout.split():
        path = os.path.join(ROOT, name)
        if os.path.isfile(path):
            with open(path, encoding="utf-8") as f:
                count = sum(1 for _ in f)
            if count > MAX_LINES:
                long.append(f"{name}: {count} lines")
    assert not long, f"files over {MAX_LINES} lines:\n" + "\n".join(long)
