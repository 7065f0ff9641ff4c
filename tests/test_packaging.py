"""Every runtime import of fcos_core/, tools/ and demo/ is declared in pyproject.toml.

Imports are read with ``ast`` (nothing is imported). A package listed only in an extra must be
imported through ``fcos_core.utils.extras.require`` or inside ``try: ... except ImportError``, so
that a missing extra gives an install hint instead of a crash.
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import pytest
import tomllib

from fcos_core.utils.extras import EXTRAS, MissingExtraError, install_hint, require

REPO = Path(__file__).resolve().parents[1]
SCANNED = ("fcos_core", "tools", "demo")
# import name -> distribution name, where they differ
DISTRIBUTIONS = {
    "cv2": "opencv-python-headless",
    "yaml": "PyYAML",
    "PIL": "pillow",
    "faster_coco_eval": "faster-coco-eval",
}
# modules of this repository imported by path (demo/fcos_demo.py imports demo/predictor.py)
LOCAL = {"fcos_core", "predictor"}


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirement_names(requirements: list[str]) -> set[str]:
    return {_normalise(re.split(r"[<>=!~;\[ ]", r, maxsplit=1)[0]) for r in requirements}


def _project() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]


def _guarded_lines(tree: ast.AST) -> set[int]:
    """Lines inside a ``try`` whose handlers catch ImportError / ModuleNotFoundError."""
    lines: set[int] = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.Try):
            continue
        caught = {ast.unparse(h.type) for h in node.handlers if h.type is not None}
        if caught & {"ImportError", "ModuleNotFoundError"}:
            for stmt in node.body:
                lines.update(range(stmt.lineno, (stmt.end_lineno or stmt.lineno) + 1))
    return lines


def imports() -> list[tuple[str, int, str, bool]]:
    """(file, line, top-level module, guarded) of every absolute import in the scanned trees."""
    found = []
    for folder in SCANNED:
        for path in sorted((REPO / folder).rglob("*.py")):
            tree = ast.parse(path.read_text(), filename=str(path))
            guarded = _guarded_lines(tree)
            for node in ast.walk(tree):
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                else:
                    continue
                rel, line = str(path.relative_to(REPO)), node.lineno
                found += [(rel, line, n.split(".")[0], line in guarded) for n in names]
    return found


def test_scan_finds_the_known_imports():
    modules = {module for _, _, module, _ in imports()}
    assert {"torch", "cv2", "yacs", "pycocotools", "matplotlib", "onnxruntime"} <= modules


def test_every_import_is_declared():
    project = _project()
    core = _requirement_names(project["dependencies"])
    extras = set().union(*map(_requirement_names, project["optional-dependencies"].values()))
    missing = []
    for path, line, module, guarded in imports():
        if module in sys.stdlib_module_names or module in LOCAL:
            continue
        dist = _normalise(DISTRIBUTIONS.get(module, module))
        if dist in core:
            continue
        if dist in extras and guarded:
            continue
        why = "in an extra but imported without a guard" if dist in extras else "undeclared"
        missing.append(f"{path}:{line}: {module} ({dist}) {why}")
    assert not missing, "\n".join(missing)


def test_extras_table_matches_pyproject():
    extras = {
        name: _requirement_names(reqs) for name, reqs in _project()["optional-dependencies"].items()
    }
    for module, (extra, dist) in EXTRAS.items():
        assert _normalise(dist) in extras[extra], (module, extra)


def test_makefile_pins_are_declared():
    project = _project()
    declared = _requirement_names(project["dependencies"])
    declared |= set().union(*map(_requirement_names, project["optional-dependencies"].values()))
    build = tomllib.loads((REPO / "pyproject.toml").read_text())["build-system"]["requires"]
    declared |= _requirement_names(build)
    text = (REPO / "Makefile").read_text().replace("\\\n", " ")
    pins = re.search(r"^PINNED := (.*)$", text, re.M).group(1).split()
    pinned = {_normalise(p.split("==")[0]) for p in pins}
    assert pinned - declared == set(), "pinned in the Makefile but not in pyproject.toml"
    assert _requirement_names(project["dependencies"]) - pinned == set(), "core dep not pinned"


def test_missing_extra_names_the_extra():
    with pytest.raises(MissingExtraError, match=r"ONNX export needs the onnx package: "
                       r"pip install 'fcos\[export\]'"):  # fmt: skip
        _require_missing("onnx", "ONNX export")
    assert "fcos[tensorboard]" in install_hint("tensorboard")
    with pytest.raises(KeyError, match="not an optional package"):
        install_hint("numpy")


def _require_missing(module: str, feature: str) -> None:
    saved = sys.modules.get(module)
    sys.modules[module] = None  # makes the import raise ImportError
    try:
        require(module, feature)
    finally:
        if saved is None:
            del sys.modules[module]
        else:
            sys.modules[module] = saved
