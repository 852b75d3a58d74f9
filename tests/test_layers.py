"""The layering the design promises, checked on the source: errors at the bottom, verifiers and
the sandbox below the trainers, trainers that never import each other, a library without Prefect,
and a config and a stage table that load without torch."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _imports(path: Path) -> set[str]:
    """Every module a file imports, at any depth (lazy imports inside functions count)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _files(folder: str) -> list[Path]:
    return sorted((REPO / folder).rglob("*.py"))


def test_errors_imports_nothing_of_the_project():
    project = {"pipeline", "verifiers", "sandbox", "flows"}
    assert not {m.split(".")[0] for m in _imports(REPO / "errors.py")} & project


@pytest.mark.parametrize("folder", ["verifiers", "sandbox"])
def test_verifiers_and_the_sandbox_never_import_a_trainer_or_the_flows(folder):
    for path in _files(folder):
        bad = {m for m in _imports(path) if m.startswith(("pipeline.trainers", "flows"))}
        assert not bad, f"{path.relative_to(REPO)} imports {bad}"


def test_the_sandbox_does_not_import_the_training_library():
    for path in _files("sandbox"):
        bad = {m for m in _imports(path) if m.split(".")[0] == "pipeline"}
        assert not bad, f"{path.relative_to(REPO)} imports {bad}"


def test_no_trainer_imports_another():
    trainers = {p.stem for p in _files("pipeline/trainers")} - {"__init__", "common"}
    for path in _files("pipeline/trainers"):
        others = {f"pipeline.trainers.{t}" for t in trainers if t != path.stem}
        bad = _imports(path) & others
        assert not bad, f"{path.relative_to(REPO)} imports {bad}"


def test_the_library_never_imports_prefect():
    for path in _files("pipeline"):
        bad = {m for m in _imports(path) if m.split(".")[0] == "prefect"}
        assert not bad, f"{path.relative_to(REPO)} imports {bad}"


@pytest.mark.parametrize("module", ["pipeline.config", "pipeline.stages", "errors"])
def test_loads_without_torch_or_prefect(module):
    code = f"import sys, {module}; sys.exit(bool({{'torch', 'prefect'}} & set(sys.modules)))"
    assert subprocess.run([sys.executable, "-c", code], cwd=REPO).returncode == 0


def test_importing_verifiers_sets_no_environment():
    # `pipeline/__init__` sets OMP_WAIT_POLICY for the trainers; a verifier user must not get it.
    code = "import os, sys, verifiers; sys.exit(('pipeline' in sys.modules) or ('OMP_WAIT_POLICY' in os.environ))"
    env = {k: v for k, v in __import__("os").environ.items() if k != "OMP_WAIT_POLICY"}
    assert subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env).returncode == 0
