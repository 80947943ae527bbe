"""The package's layers hold: every module belongs to one stage, a stage imports only the stages below it
(record → analysis → report/figures, never back), nothing imports in a circle, and a function imports
another reglab module inside itself only to put off a heavy or optional dependency.

The imports are read from the source files (every `import`, function-local and type-checking ones
included), so a deliberate upward import anywhere fails here.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path
from typing import NamedTuple

import pytest

import reglab

PACKAGE_DIR = Path(reglab.__file__).parent

#: The stages, lowest first. A name is a subpackage or a top-level module; a module belongs to the most
#: specific name that contains it.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("reglab._version", "reglab._keras", "reglab.errors", "reglab.formatting", "reglab.inputs", "reglab.fileio",
     "reglab.rendering", "reglab.settings"),
    ("reglab.data",),
    ("reglab.config",),
    ("reglab.record",),
    ("reglab.model",),
    ("reglab.engines",),
    ("reglab.analysis",),
    ("reglab.figures",),
    ("reglab.report",),
    ("reglab.tracking",),
    ("reglab.run",),
    ("reglab", "reglab.cli", "reglab.__main__"),
)

#: Third-party packages slow to import or optional: only these may be put off into a function, and a
#: reglab module that imports one of them at its top is put off likewise.
HEAVY = frozenset({"keras", "jax", "jaxlib", "matplotlib", "tensorboard", "mlflow", "ray", "pandas", "scipy", "sklearn",
                   "mlxtend", "IPython", "tomli_w"})


class Import(NamedTuple):
    source: str  # the importing module
    target: str  # the reglab module imported, or a third-party top-level package
    local: bool  # inside a function
    type_only: bool  # under `if TYPE_CHECKING:`
    line: int


def module_names() -> dict[str, Path]:
    out = {}
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


MODULES = module_names()


def _resolve(module: str, path: Path, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def imports_of(module: str, path: Path) -> list[Import]:
    tree = ast.parse(path.read_text())
    type_only: set[int] = set()
    local: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            type_only |= {id(n) for n in ast.walk(node)}
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            local |= {id(n) for n in ast.walk(node)}
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(module, path, node)
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names]
        else:
            continue
        for target in targets:
            if target == "reglab" or target.startswith("reglab."):
                while target not in MODULES:
                    target = target.rsplit(".", 1)[0]
            else:
                target = target.split(".")[0]
            if target != module:
                out.append(Import(module, target, id(node) in local, id(node) in type_only, node.lineno))
    return out


IMPORTS = [i for m, p in MODULES.items() for i in imports_of(m, p)]


def layer_of(module: str) -> int:
    best, rank = "", -1
    for i, names in enumerate(LAYERS):
        for name in names:
            if (module == name or module.startswith(name + ".")) and len(name) > len(best):
                best, rank = name, i
    return rank


def heavy_modules() -> set[str]:
    """reglab modules that import a heavy package at their top, directly or through another such module."""
    heavy: set[str] = set()
    changed = True
    while changed:
        changed = False
        for i in IMPORTS:
            if i.local or i.type_only or i.source in heavy:
                continue
            if i.target in HEAVY or i.target in heavy:
                heavy.add(i.source)
                changed = True
    return heavy


def runtime_edges() -> dict[str, set[str]]:
    """What importing each module executes: the modules it imports and, for a module inside a subpackage it
    does not belong to, that subpackage's `__init__` (Python runs it first)."""
    edges: dict[str, set[str]] = {m: set() for m in MODULES}
    for i in IMPORTS:
        if i.type_only or not i.target.startswith("reglab"):
            continue
        edges[i.source].add(i.target)
        parts = i.target.split(".")
        for k in range(2, len(parts)):
            package = ".".join(parts[:k])
            if package in MODULES and not i.source.startswith(package + ".") and i.source != package:
                edges[i.source].add(package)
    return edges


def circles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = [0]
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10 * len(edges) + 100))

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def test_every_module_belongs_to_one_stage():
    assert [m for m in MODULES if layer_of(m) < 0] == []


def test_no_stage_imports_a_higher_one():
    upward = [f"{i.source} (line {i.line}) imports {i.target}" for i in IMPORTS
              if i.target.startswith("reglab") and layer_of(i.target) > layer_of(i.source)]
    assert upward == []


def test_nothing_imports_in_a_circle():
    assert circles(runtime_edges()) == []


def test_function_local_imports_only_put_off_heavy_modules():
    heavy = heavy_modules()
    light = [f"{i.source} (line {i.line}) imports {i.target} inside a function" for i in IMPORTS
             if i.local and i.target.startswith("reglab") and i.target not in heavy]
    assert light == []


def test_function_local_imports_of_other_packages_put_off_only_heavy_or_optional_ones():
    """numpy, the standard library and rich are imported where a module starts: a function may put off only
    what is slow to import or optional (HEAVY)."""
    light = [f"{i.source} (line {i.line}) imports {i.target} inside a function" for i in IMPORTS
             if i.local and not i.type_only and not i.target.startswith("reglab") and i.target not in HEAVY]
    assert light == []


def test_the_checker_sees_an_upward_import_and_a_circle():
    """The checks above can fail: an analysis module importing the report, and two modules importing each
    other, are found by the same functions."""
    edges = {"a": {"b"}, "b": {"a"}, "c": set()}
    assert circles(edges) == [["a", "b"]]
    assert layer_of("reglab.analysis.noise") < layer_of("reglab.report.build")
    fake = Import("reglab.record.reader", "reglab.analysis.analyze", False, False, 1)
    assert layer_of(fake.target) > layer_of(fake.source)


@pytest.mark.parametrize("package", sorted(m for m, p in MODULES.items() if p.name == "__init__.py"))
def test_each_package_names_its_public_parts(package):
    """A short `__init__` that says what the stage is and lists what it offers."""
    module = __import__(package, fromlist=["__all__"])
    assert module.__doc__ and module.__doc__.strip()
    assert list(getattr(module, "__all__", ())) == sorted(getattr(module, "__all__", ())) and module.__all__
    for name in module.__all__:
        assert hasattr(module, name), f"{package}.__all__ names {name}, which it does not define"
