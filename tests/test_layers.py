"""The layered architecture of README's "Layout": import-linter's contracts hold, a deliberately upward
import breaks them, every module sits in exactly one layer, and no module grows past ~400 lines."""
from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("bench", "generators", "recognition", "protocols")
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
MAX_LINES = 420  # "~400": beyond it a module states in its docstring why it is one file


def layers() -> list[list[str]]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    contract = next(c for c in config["contracts"] if c["id"] == "layers")
    return [[name.strip() for name in layer.split(":")] for layer in contract["layers"]]


def lint_imports(cwd: Path) -> subprocess.CompletedProcess:
    environment = {**os.environ, "PYTHONPATH": str(cwd)}
    return subprocess.run([str(LINT_IMPORTS), "--no-cache"], cwd=cwd, env=environment, capture_output=True, text=True,
                          timeout=300)


def test_contracts_hold():
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(("module", "upward"), [
    ("bench/common/atomic.py", "import generators.train"),  # the base importing the translator
    ("protocols/metrics.py", "from recognition.train import TrainConfig"),  # evaluation importing the trainer
    ("recognition/faces/align.py", "import protocols.lfw_files"),  # faces importing a protocol
])
def test_an_upward_import_breaks_the_build(tmp_path, module, upward):
    """A copy of the project with one upward import added: lint-imports must fail and name the import."""
    for package in PACKAGES:
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    with open(tmp_path / module, "a") as source:
        source.write(f"\n{upward}  # deliberately upward\n")
    result = lint_imports(tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    importer = module.removesuffix(".py").replace("/", ".")
    assert importer in result.stdout and "BROKEN" in result.stdout.upper(), result.stdout


def test_every_module_sits_in_exactly_one_layer():
    graph = grimp.build_graph(*PACKAGES)
    prefixes = [name for layer in layers() for name in layer]
    package_roots = {"bench", "generators", "recognition", "protocols"}
    homeless, ambiguous = [], []
    for module in sorted(graph.modules):
        if module in package_roots:
            continue
        homes = [p for p in prefixes if module == p or module.startswith(p + ".")]
        (homeless if not homes else ambiguous if len(homes) > 1 else []).append(module)
    assert not homeless, f"modules in no layer (add them to pyproject's layers contract): {homeless}"
    assert not ambiguous, f"modules in two layers: {ambiguous}"


def test_modules_stay_short_or_say_why():
    long = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            lines = path.read_text().count("\n")
            docstring = ast.get_docstring(ast.parse(path.read_text())) or ""
            if lines > MAX_LINES and "one file because" not in docstring:
                long.append(f"{path.relative_to(ROOT)} ({lines} lines)")
    assert not long, f"split these by responsibility, or say in the docstring why each is 'one file because': {long}"
