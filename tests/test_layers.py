"""The import rules of docs/design.md ("Layers"), checked on the source files with ``ast``.

- the simulator core (``batchenv``'s config, timing, arrivals, traces, sim, metrics, estimators,
  scenarios, fileio) imports no Gymnasium, no learning library and no module of the env layer;
- ``batchenv`` imports nothing from agents, execution, evaluation, formal or apps;
- no library package (batchenv, agents, execution, evaluation, formal) imports an application:
  ``apps``, the root scripts ``train.py``, ``evaluate.py``, ``verify.py`` or ``benchmarks``.

Every import counts, also one inside a function. Packages that do not exist (yet) are skipped.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

CORE = (
    "config",
    "config_fields",
    "timing_config",
    "arrival_config",
    "reward_config",
    "env_config",
    "config_yaml",
    "timing",
    "arrivals",
    "traces",
    "sim",
    "metrics",
    "estimators",
    "batch_rules",
    "scenarios",
    "fileio",
)
"""The simulator core: modules of ``batchenv`` that know nothing of Gymnasium."""
ENV_LAYER = ("env", "observation", "actions")
LEARNING_LIBRARIES = ("gymnasium", "stable_baselines3", "sb3_contrib", "torch")
LIBRARIES = ("batchenv", "agents", "execution", "evaluation", "formal")
APPLICATIONS = ("apps", "train", "evaluate", "verify", "benchmarks")


def imports(path: Path) -> Iterator[tuple[int, str]]:
    """(line, absolute dotted name) of every module ``path`` imports, anywhere in the file;
    ``from a import b`` yields ``a`` and ``a.b`` (b may be a module)."""
    package = path.relative_to(REPO).with_suffix("").parts[:-1]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the file's package
                base = list(package[: len(package) - node.level + 1])
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            yield node.lineno, module
            for alias in node.names:
                yield node.lineno, f"{module}.{alias.name}"


def sources(package: str) -> list[Path]:
    return sorted((REPO / package).rglob("*.py"))


def existing(packages: tuple[str, ...]) -> list[str]:
    return [p for p in packages if (REPO / p / "__init__.py").is_file()]


def violations(paths: list[Path], forbidden: tuple[str, ...]) -> list[str]:
    """``file:line imports name`` for each import of a forbidden top-level module (or prefix)."""
    out: dict[tuple[str, int], str] = {}
    for path in paths:
        for line, name in imports(path):
            if any(name == f or name.startswith(f + ".") for f in forbidden):
                key = (str(path.relative_to(REPO)), line)
                out[key] = min(out.get(key, name), name, key=len)  # the module, not its members
    return [f"{where}:{line} imports {name}" for (where, line), name in sorted(out.items())]


def test_the_import_scanner_sees_every_kind_of_import(tmp_path: Path, monkeypatch) -> None:
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    module = pkg / "mod.py"
    module.write_text(
        "import gymnasium\nfrom . import sim\nfrom .env import X\n"
        "def f():\n    from apps.train import main\n    import torch.nn as nn\n"
    )
    monkeypatch.setattr(f"{__name__}.REPO", tmp_path)
    names = {name for _, name in imports(module)}
    assert {"gymnasium", "pkg.sim", "pkg.env", "pkg.env.X", "apps.train", "torch.nn"} <= names
    assert violations([module], ("apps",)) == ["pkg/mod.py:5 imports apps.train"]


def test_the_simulator_core_imports_no_gymnasium_and_no_env_layer() -> None:
    core = [REPO / "batchenv" / f"{name}.py" for name in CORE]
    assert all(p.is_file() for p in core), [p.name for p in core if not p.is_file()]
    forbidden = (*LEARNING_LIBRARIES, *(f"batchenv.{m}" for m in ENV_LAYER))
    found = violations(core, forbidden)
    # ``from batchenv import X`` runs the package's __init__, which registers the Gymnasium ids
    found += [
        f"{p.relative_to(REPO)}:{line} imports {name} (the package, with its env registration)"
        for p in core
        for line, name in imports(p)
        if name == "batchenv"
    ]
    assert not found, "the simulator core must not depend on Gymnasium:\n" + "\n".join(found)


def test_batchenv_imports_no_higher_layer() -> None:
    higher = tuple(p for p in LIBRARIES if p != "batchenv") + APPLICATIONS
    found = violations(sources("batchenv"), higher)
    assert not found, "batchenv is the bottom layer:\n" + "\n".join(found)


@pytest.mark.parametrize("package", existing(LIBRARIES))
def test_no_library_package_imports_an_application(package: str) -> None:
    found = violations(sources(package), APPLICATIONS)
    assert not found, f"{package} is a library; applications import it, not the reverse:\n" + "\n".join(found)
