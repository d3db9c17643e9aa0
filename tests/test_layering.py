"""The package's layers, checked statically: arrows point down, as ARCHITECTURE.md draws them —
cli -> tools/dataset/api -> export/calibration -> runtime/codec -> io/model/dsp -> contract/errors.

The deployed runtime must not depend on the torch side of the project (codec/, export/, calibration/), not even
through a lazy import inside a function or through a module it imports; nothing imports a module of a higher layer;
no two modules import each other, directly or round a longer loop (lazy imports count: a cycle that only closes at
run time still means neither module can be read or moved alone); and the package root holds only the public face.
Every module is read as source (its AST walked), never imported, so a violation is found even on a path no test
happens to execute. The walk is scripts/layout_report.py's, so the report's counts and these checks agree.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

_spec = importlib.util.spec_from_file_location(
    "layout_report", Path(__file__).resolve().parent.parent / "scripts" / "layout_report.py")
layout = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(layout)

PACKAGE = layout.PACKAGE
TORCH_SIDE = ("apucodec.codec", "apucodec.export", "apucodec.calibration")
module_name, module_file, imported_names = layout.module_name, layout.module_file, layout.imported_names


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


def test_no_import_cycles_among_package_modules():
    """Strongly connected components of the import graph (every import at any depth, lazy ones included)."""
    graph = layout.import_graph()
    assert len(graph) > 100, "the walk found too few modules to prove anything"
    assert layout.cycles(graph) == []


def test_no_module_imports_a_higher_layer():
    graph = layout.import_graph()
    unplaced = sorted(name for name in graph if layout.layer_of(name) is None)
    assert unplaced == [], "every module belongs to a layer of ARCHITECTURE.md"
    assert layout.upward_imports(graph) == []


def test_the_package_root_holds_only_the_public_face():
    assert sorted(layout.root_modules()) == sorted(layout.PUBLIC_FACE)


def test_the_layers_below_the_runtime_stay_torch_free():
    """io/, model/, dsp/ and contract/ are read by the runtime and by training alike: none may pull torch in."""
    start = [p for folder in ("io", "model", "dsp", "contract") for p in modules_under(folder)]
    assert violations(start, TORCH_SIDE) == []


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "apucodec"
    for rel, text in {"__init__.py": "", **files}.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        for parent in path.relative_to(root).parents:
            (root / parent / "__init__.py").touch()
        path.write_text(text)
    return root


def test_the_cycle_check_finds_a_lazy_cycle(tmp_path):
    root = _tree(tmp_path, {"io/a.py": "from apucodec.io import b\n",
                            "io/b.py": "def f():\n    from apucodec.io.c import g\n",
                            "io/c.py": "from .a import x\n", "io/d.py": "from apucodec.io import a\n"})
    assert layout.cycles(layout.import_graph(root)) == [["apucodec.io.a", "apucodec.io.b", "apucodec.io.c"]]
    (root / "io" / "c.py").write_text("import numpy\n")
    assert layout.cycles(layout.import_graph(root)) == []


def test_the_layer_check_finds_an_upward_import(tmp_path):
    root = _tree(tmp_path, {"model/pull.py": "def f():\n    from apucodec.export import model_export\n",
                            "export/model_export.py": "from apucodec.model import pull\n",
                            "io/audio.py": "from apucodec import __version__\n"})
    assert layout.upward_imports(layout.import_graph(root)) == ["apucodec.model.pull -> apucodec.export.model_export"]
