"""Measure the package's layout: what a reader meets before finding a behaviour by its folder's name.

Prints, for the `apucodec` package next to this script (or the one given as the first argument):
  - modules at the package root (apucodec/*.py),
  - import cycles among package modules (strongly connected components of more than one module, counting every
    import at any depth of a module's code, lazy imports inside functions included),
  - upward imports (an import from a lower layer to a higher one, in ARCHITECTURE.md's order),
  - top-level functions and classes defined under the same name in more than one module,
  - module-name collisions (one file stem in several packages).
The sources are parsed, never imported, so the counts need no installed extra. tests/test_layering.py asserts the
same graph has no cycles and no upward imports; both use the functions here, so the report and the test agree.

Usage:  python scripts/layout_report.py [path/to/apucodec] [-v]
"""

from __future__ import annotations

import ast
import sys
from collections import defaultdict
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "apucodec"

# ARCHITECTURE.md's arrows, lowest layer first: "cli -> tools/dataset -> runtime -> model/io -> contract;
# export/calibration -> contract". A module may import its own layer or any lower one. The public face (api,
# codes, the package itself) sits above the runtime it drives; errors sit under everything that raises them.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("apucodec.errors", "apucodec.contract"),
    ("apucodec.io", "apucodec.model", "apucodec.dsp"),
    ("apucodec.runtime", "apucodec.codec"),
    ("apucodec.export", "apucodec.calibration"),
    ("apucodec.codes", "apucodec.api", "apucodec.tools", "apucodec.dataset"),
    ("apucodec.cli", "apucodec.__main__", "apucodec"),
)
PUBLIC_FACE = ("__init__.py", "__main__.py", "api.py", "codes.py", "errors.py")


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
    """Every package module `path` imports, at any depth of its code (relative imports resolved); `from pkg import
    name` counts `pkg.name` when that is a module, else `pkg`."""
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
            if base == root.name and all(alias.name == "__version__" for alias in node.names):
                continue  # a constant of the root __init__, which Python has run before any submodule: no edge
            submodules = {f"{base}.{alias.name}" for alias in node.names}
            found_sub = {s for s in submodules if module_file(s, root) is not None}
            names.update(found_sub)
            if found_sub != submodules or not submodules:
                names.add(base)
    found = set()
    for name in names:
        if name.split(".")[0] != root.name:
            continue
        while name and module_file(name, root) is None:  # `from pkg.mod import function` -> pkg.mod
            name = name.rpartition(".")[0]
        if name:
            found.add(name)
    return found


def all_modules(root: Path = PACKAGE) -> list[Path]:
    return sorted(p for p in root.rglob("*.py") if "models" not in p.relative_to(root).parts[:1])


def import_graph(root: Path = PACKAGE) -> dict[str, set[str]]:
    """Module -> the package modules it imports (itself left out)."""
    graph = {}
    for path in all_modules(root):
        name = module_name(path, root)
        graph[name] = {dep for dep in imported_names(path, root) if dep != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph.get(start, ()))))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            advanced = False
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                    advanced = True
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return sorted(found)


def layer_of(name: str) -> int | None:
    """The layer of a module: its longest matching prefix in LAYERS; None for a root module no layer names."""
    best, rank = -1, None
    for i, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if (name == prefix or name.startswith(prefix + ".")) and len(prefix) > best:
                best, rank = len(prefix), i
    if rank == len(LAYERS) - 1 and name != "apucodec" and best == len("apucodec"):
        return None  # a loose root module: not placed in any layer
    return rank


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    """`a -> b` for every import from a lower layer into a higher one (unplaced root modules are skipped)."""
    found = []
    for name, deps in graph.items():
        own = layer_of(name)
        for dep in deps:
            theirs = layer_of(dep)
            if own is not None and theirs is not None and theirs > own:
                found.append(f"{name} -> {dep}")
    return sorted(found)


def repeated_names(root: Path = PACKAGE) -> dict[str, list[str]]:
    """Top-level function and class names defined in more than one module."""
    where: dict[str, list[str]] = defaultdict(list)
    for path in all_modules(root):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                where[node.name].append(module_name(path, root))
    return {name: mods for name, mods in sorted(where.items()) if len(set(mods)) > 1}


def stem_collisions(root: Path = PACKAGE) -> dict[str, list[str]]:
    """File stems (other than __init__/__main__) found in more than one package folder."""
    where: dict[str, list[str]] = defaultdict(list)
    for path in all_modules(root):
        if path.stem not in ("__init__", "__main__"):
            where[path.stem].append(module_name(path, root))
    return {stem: mods for stem, mods in sorted(where.items()) if len(mods) > 1}


def root_modules(root: Path = PACKAGE) -> list[str]:
    return sorted(p.name for p in root.glob("*.py"))


def main(argv: list[str]) -> int:
    verbose = "-v" in argv
    args = [a for a in argv if a != "-v"]
    root = Path(args[0]).resolve() if args else PACKAGE
    graph = import_graph(root)
    found_cycles = cycles(graph)
    upward = upward_imports(graph)
    names = repeated_names(root)
    public = {n: m for n, m in names.items() if not n.startswith("_")}
    stems = stem_collisions(root)
    roots = root_modules(root)
    loose = [r for r in roots if r not in PUBLIC_FACE]
    print(f"package modules:                     {len(graph)}")
    print(f"modules at the package root:         {len(roots)} ({len(loose)} beyond the public face)")
    print(f"import cycles (SCCs > 1 module):     {len(found_cycles)}"
          f" ({sum(len(c) for c in found_cycles)} modules in them)")
    print(f"upward imports:                      {len(upward)}")
    print(f"names defined in more than one module: {len(names)} ({len(public)} public)")
    print(f"module-name collisions (stems):      {len(stems)}")
    if verbose:
        print("\nroot modules beyond the public face:", ", ".join(loose) or "-")
        for component in found_cycles:
            print("cycle:", " <-> ".join(component))
        for line in upward:
            print("upward:", line)
        for name, mods in names.items():
            print(f"name {name}: {', '.join(mods)}")
        for stem, mods in stems.items():
            print(f"stem {stem}: {', '.join(mods)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
