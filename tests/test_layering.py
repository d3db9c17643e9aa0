"""The package's layers, checked statically: arrows point down (cli -> tools -> runtime -> contract).

The deployed runtime must not depend on the torch side of the project (codec/, export/, calibration/), not even
through a lazy import inside a function or through a module it imports; and nothing in the runtime may reach up
into the tools built about it. Every module is read as source (its AST walked), never imported, so a violation is
found even on a path no test happens to execute.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "apucodec"
TORCH_SIDE = ("apucodec.codec", "apucodec.export", "apucodec.calibration")


def module_name(path: Path, root: Path = PACKAGE) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def module_file(name: str, root: Path = PACKAGE) -> Path | None:
    """The source file of an `apucodec...` module or package, or None for a name inside a module."""
    base = root.parent.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def imported_names(path: Path, root: Path = PACKAGE) -> set[str]:
    """Every module name `path` imports, at any depth of its code (relative imports resolved), that exists under
    the package; `from pkg import name` counts `pkg.name` when that is a module, else `pkg`."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    own = module_name(path, root).split(".")
    package = own if path.name == "__init__.py" else own[:-1]
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package[: len(package) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    found = set()
    for name in names:
        if name.split(".")[0] != root.name:
            continue
        while name and module_file(name, root) is None:  # `from pkg.mod import function` -> pkg.mod
            name = name.rpartition(".")[0]
        if name:
            found.add(name)
    return found


def reachable(start: list[Path], root: Path = PACKAGE) -> dict[str, str]:
    """Every package module reachable from `start` by imports (parent packages included, as Python runs their
    __init__), mapped to the module that first imported it."""
    seen: dict[str, str] = {}
    todo = [(module_name(p, root), "") for p in start]
    while todo:
        name, by = todo.pop()
        if name in seen:
            continue
        seen[name] = by
        parts = name.split(".")
        parents = [".".join(parts[:i]) for i in range(1, len(parts))]
        path = module_file(name, root)
        todo.extend((parent, name) for parent in parents if parent not in seen)
        if path is not None:
            todo.extend((dep, name) for dep in imported_names(path, root) if dep not in seen)
    return seen


def violations(start: list[Path], forbidden: tuple[str, ...], root: Path = PACKAGE) -> list[str]:
    """`module (imported by X)` for every forbidden module reachable from `start`."""
    seen = reachable(start, root)
    return sorted(f"{name} (imported by {by})" for name, by in seen.items()
                  if any(name == f or name.startswith(f + ".") for f in forbidden))


def modules_under(folder: str) -> list[Path]:
    return sorted((PACKAGE / folder).rglob("*.py"))


def direct_imports(folder: str, forbidden: tuple[str, ...]) -> list[str]:
    return sorted(f"{module_name(p)} imports {name}" for p in modules_under(folder) for name in imported_names(p)
                  if any(name == f or name.startswith(f + ".") for f in forbidden))


def test_runtime_imports_nothing_from_the_torch_side():
    assert modules_under("runtime"), "no runtime modules found: the walk would prove nothing"
    assert direct_imports("runtime", TORCH_SIDE) == []


def test_runtime_reaches_nothing_on_the_torch_side_through_other_modules():
    """Transitively: a runtime module importing a shared module that imports codec/ drags torch in all the same."""
    assert violations(modules_under("runtime"), TORCH_SIDE) == []


def test_runtime_does_not_import_the_tools_about_it():
    assert direct_imports("runtime", ("apucodec.tools", "apucodec.cli")) == []


def test_tools_stay_torch_free():
    """bench and doctor are runtime commands: they run where only onnxruntime and numpy are installed."""
    assert modules_under("tools")
    assert violations(modules_under("tools"), TORCH_SIDE) == []


def test_contract_depends_on_nothing_above_it():
    assert direct_imports("contract", (*TORCH_SIDE, "apucodec.runtime", "apucodec.tools", "apucodec.cli")) == []


@pytest.mark.parametrize("line", ["from apucodec.codec.config import CodecConfig",
                                  "import apucodec.export.model_export",
                                  "def f():\n    from ..calibration import quantize\n",
                                  "from apucodec.middle import helper"])
def test_the_walk_finds_a_violation(tmp_path, line):
    """The checks above could fail: a forbidden import, lazy, relative or one module removed, is reported."""
    root = tmp_path / "apucodec"
    for folder in ("runtime", "codec", "export", "calibration"):
        (root / folder).mkdir(parents=True)
        (root / folder / "__init__.py").write_text("")
    (root / "__init__.py").write_text("")
    (root / "codec" / "config.py").write_text("")
    (root / "export" / "pipeline.py").write_text("")
    (root / "calibration" / "quantize.py").write_text("")
    (root / "middle.py").write_text("from apucodec.codec import config\n\ndef helper():\n    pass\n")
    module = root / "runtime" / "engine.py"
    module.write_text(line + "\n")
    assert violations([module], TORCH_SIDE, root) != []
    (root / "runtime" / "clean.py").write_text("import numpy\n")
    assert violations([root / "runtime" / "clean.py"], TORCH_SIDE, root) == []
