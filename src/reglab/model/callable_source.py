"""A notebook's model-building function as a module of its own, so a run can rebuild its model in any process.

`reglab run --model FILE.py:FUNCTION` needs a file; a notebook user has a function in a cell. `source_of`
writes that function out as a self-contained module: its source, plus, for each global name it reads
(LOAD_GLOBAL / LOAD_NAME in its bytecode and its nested code, and the names in its decorators and default
values, which are evaluated where it is defined):

- a module → `import numpy as np`;
- a function or class defined beside it (in the notebook, `__main__`, or the function's own module) → its
  source too, recursively;
- a function, class or other object importable by name from a real module → `from module import name`;
- a simple constant (int, float, str, bytes, bool, None, and tuples, lists and dicts of those) → `name = repr`.

Anything else (a lambda, a closure, a built-in, a global holding a live object such as an array or a model)
is one `ConfigError` saying what to write instead. `model_source` also takes an uncompiled Keras model,
saved as its JSON config, and checks either kind by running the saved module in a fresh namespace and
comparing the model it builds with the original's `get_config()` (layer names aside: Keras numbers them).
"""

from __future__ import annotations

import ast
import dis
import importlib
import inspect
import linecache
import math
import re
import textwrap
import types
from dataclasses import dataclass, field
from typing import Any, Callable, NamedTuple

from reglab.errors import ConfigError
from reglab.inputs import brief

#: What to do instead, said once at the end of every refusal.
ADVICE = "define build_model with def at the top level of a cell; pass constants as defaults (def build_model(units=64):)"
#: The header of every saved module: annotations stay unevaluated, as names only a type checker sees may be in them.
HEADER = ('"""The model-building function given to reglab.sweep, saved by reglab with the run so that `reglab run '
          '--resume`,\n`reglab report` and `reglab.load_model` rebuild the same model in any process."""\n\n'
          "from __future__ import annotations\n")
_GLOBAL_OPS = frozenset({"LOAD_GLOBAL", "LOAD_NAME", "LOAD_FROM_DICT_OR_GLOBALS"})
_LITERAL_TYPES = (type(None), bool, int, str, bytes)


class ModelSource(NamedTuple):
    """A saved module's text and the name of the function in it that returns the model."""

    text: str
    name: str


# ---------------------------------------------------------------- what cannot be saved

def _describe(value: Any) -> str:
    kind = type(value)
    return kind.__qualname__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}"


def check_function(fn: Any, what: str) -> None:
    """Refuse what cannot be written out as a def: built-ins, methods, lambdas, closures."""
    if isinstance(fn, (types.BuiltinFunctionType, types.BuiltinMethodType)):
        raise ConfigError(f"{what} is a built-in function, whose source Python does not keep; {ADVICE}")
    if isinstance(fn, types.MethodType):
        raise ConfigError(f"{what} is a method of {_describe(fn.__self__)}; reglab saves a plain function; {ADVICE}")
    if not isinstance(fn, types.FunctionType):
        raise ConfigError(f"{what} is a {_describe(fn)}, not a function defined with def or a Keras model; {ADVICE}")
    if fn.__name__ == "<lambda>":
        raise ConfigError(f"{what} is a lambda, which reglab cannot save with the run; {ADVICE}")
    if fn.__closure__:
        names = ", ".join(fn.__code__.co_freevars)
        raise ConfigError(f"{what} is defined inside another function and uses its variables ({names}), which reglab "
                          f"cannot save with the run; {ADVICE}")


# ---------------------------------------------------------------- reading source

def _parse_definition(text: str, what: str) -> ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef:
    try:
        tree = ast.parse(text)
    except SyntaxError:
        raise ConfigError(f"the source Python keeps for {what} is not a whole definition; {ADVICE}") from None
    if len(tree.body) != 1 or not isinstance(tree.body[0], (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        raise ConfigError(f"the source Python keeps for {what} is not a single def or class; {ADVICE}")
    return tree.body[0]


def _function_source(fn: types.FunctionType, what: str) -> tuple[str, ast.FunctionDef | ast.AsyncFunctionDef]:
    try:
        text = textwrap.dedent(inspect.getsource(fn))
    except (OSError, TypeError):
        raise ConfigError(f"Python keeps no source for {what} (defined with exec, or at the plain interactive prompt); "
                          f"{ADVICE}") from None
    node = _parse_definition(text, what)
    if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        raise ConfigError(f"the source Python keeps for {what} is not its def; {ADVICE}")
    return text, node


def _class_source(cls: type, what: str) -> tuple[str, ast.ClassDef]:
    """inspect.getsource; for a class of a notebook cell (whose module has no file before Python 3.13), the
    definition around one of its methods in the cell's text."""
    try:
        text = textwrap.dedent(inspect.getsource(cls))
    except (OSError, TypeError):
        text = _class_source_by_method(cls, what)
    node = _parse_definition(text, what)
    if not isinstance(node, ast.ClassDef):
        raise ConfigError(f"the source Python keeps for {what} is not its class statement; {ADVICE}")
    return text, node


def _class_source_by_method(cls: type, what: str) -> str:
    for fn in _methods(cls):
        code = fn.__code__
        lines = linecache.getlines(code.co_filename)
        try:
            tree = ast.parse("".join(lines))
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if (isinstance(node, ast.ClassDef) and node.name == cls.__name__
                    and node.lineno <= code.co_firstlineno <= (node.end_lineno or 0)):
                start = min([node.lineno, *(d.lineno for d in node.decorator_list)])
                return textwrap.dedent("".join(lines[start - 1: node.end_lineno]))
    raise ConfigError(f"Python keeps no source for {what}; {ADVICE}")


def _methods(cls: type) -> list[types.FunctionType]:
    out = []
    for value in vars(cls).values():
        if isinstance(value, (staticmethod, classmethod)):
            value = value.__func__
        if isinstance(value, property):
            out += [f for f in (value.fget, value.fset, value.fdel) if isinstance(f, types.FunctionType)]
        elif isinstance(value, types.FunctionType):
            out.append(value)
    return out


# ---------------------------------------------------------------- which global names a definition reads

def code_globals(code: types.CodeType) -> list[str]:
    """The global names a code object and the code nested in it read, in order of first use."""
    names: list[str] = []
    for ins in dis.get_instructions(code):
        if ins.opname in _GLOBAL_OPS and isinstance(ins.argval, str) and ins.argval not in names:
            names.append(ins.argval)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names += [n for n in code_globals(const) if n not in names]
    return names


def _names_in(nodes: list[ast.AST | None]) -> list[str]:
    names: list[str] = []
    for node in nodes:
        for sub in ast.walk(node) if node is not None else ():
            if isinstance(sub, ast.Name) and isinstance(sub.ctx, ast.Load) and sub.id not in names:
                names.append(sub.id)
    return names


def _header_nodes(node: ast.FunctionDef | ast.AsyncFunctionDef) -> list[ast.AST | None]:
    """What is evaluated where a def stands: its decorators and default values (annotations stay text: HEADER)."""
    return [*node.decorator_list, *node.args.defaults, *node.args.kw_defaults]


def _class_statement_nodes(node: ast.ClassDef) -> list[ast.AST | None]:
    """What a class statement evaluates itself: decorators, bases, keywords, its body apart from method bodies."""
    out: list[ast.AST | None] = [*node.decorator_list, *node.bases, *node.keywords]
    for statement in node.body:
        out += _header_nodes(statement) if isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef)) else [statement]
    return out


# ---------------------------------------------------------------- how one global is written

def literal(value: Any) -> str | None:
    """Python text that evaluates to `value` for a simple constant; None for anything else."""
    if type(value) in _LITERAL_TYPES:
        return repr(value)
    if type(value) is float:
        return repr(value) if math.isfinite(value) else f"float({str(value)!r})"
    if type(value).__module__ == "numpy" and getattr(value, "shape", None) == () and hasattr(value, "item") \
            and getattr(getattr(value, "dtype", None), "kind", "") in "biuf":
        return literal(value.item())
    if type(value) in (tuple, list):
        items = [literal(v) for v in value]
        if any(i is None for i in items):
            return None
        inner = ", ".join(items) + ("," if type(value) is tuple and len(items) == 1 else "")  # type: ignore[arg-type]
        return f"({inner})" if type(value) is tuple else f"[{inner}]"
    if type(value) is dict:
        pairs = [(literal(k), literal(v)) for k, v in value.items()]
        if any(k is None or v is None for k, v in pairs):
            return None
        return "{" + ", ".join(f"{k}: {v}" for k, v in pairs) + "}"
    return None


def module_import(name: str, module: types.ModuleType) -> str | None:
    """`import x as name` for a module importable under its own name; None otherwise."""
    real = getattr(module, "__name__", None)
    if not isinstance(real, str) or real == "__main__":
        return None
    try:
        if importlib.import_module(real) is not module:
            return None
    except Exception:  # any failure to import means "not importable"
        return None
    return f"import {real}" if real == name else f"import {real} as {name}"


def object_import(name: str, value: Any) -> str | None:
    """`from module import qualname as name` for an object importable by name and found there as itself."""
    module = getattr(value, "__module__", None)
    qualname = getattr(value, "__qualname__", None) or getattr(value, "__name__", None)
    if not isinstance(module, str) or not isinstance(qualname, str) or module == "__main__" or "<" in qualname:
        return None
    try:
        found: Any = importlib.import_module(module)
        for part in qualname.split("."):
            found = getattr(found, part)
    except Exception:  # any failure to import or to find the name means "not importable"
        return None
    if found is not value:
        return None
    top, _, rest = qualname.partition(".")
    line = f"from {module} import {top}" + (f" as {name}" if name != top else "")
    return line + (f"\n{name} = {name}.{rest}" if rest else "")


# ---------------------------------------------------------------- the module

@dataclass
class _Module:
    """The saved module as it is assembled: imports, constants, then definitions, dependencies first.
    `namespace` is the function's globals: what is defined there is written out as source."""

    namespace: dict[str, Any]
    imports: list[str] = field(default_factory=list)
    constants: list[str] = field(default_factory=list)
    definitions: list[str] = field(default_factory=list)
    bound: set[str] = field(default_factory=set)

    def add_function(self, fn: Any, what: str, bound_as: str | None = None) -> None:
        """Write `fn`, after what it reads; `bound_as`: the global name it has there, when not its def's."""
        check_function(fn, what)
        text, node = _function_source(fn, what)
        self.bound.add(node.name)
        for name in [*code_globals(fn.__code__), *_names_in(_header_nodes(node))]:
            self.bind(name, fn.__name__)
        self.definitions.append(text)
        if bound_as is not None and bound_as != node.name:
            self.definitions.append(f"{bound_as} = {node.name}\n")

    def add_class(self, cls: type, what: str, bound_as: str) -> None:
        """Write `cls`, after what its class statement and its methods read."""
        text, node = _class_source(cls, what)
        self.bound.add(node.name)
        names = _names_in(_class_statement_nodes(node))
        for method in _methods(cls):
            names += [n for n in code_globals(method.__code__) if n not in names]
        for name in names:
            if name != node.name:
                self.bind(name, cls.__name__)
        self.definitions.append(text)
        if bound_as != node.name:
            self.definitions.append(f"{bound_as} = {node.name}\n")

    def bind(self, name: str, user: str) -> None:
        """Make global `name` (read by `user`) mean in the saved module what it means in the namespace."""
        if name in self.bound:
            return
        self.bound.add(name)
        if name not in self.namespace:  # a built-in (found as the original finds it), or a name it would not find either
            return
        value = self.namespace[name]
        text = literal(value)
        if isinstance(value, types.ModuleType):
            self.imports.append(self._module_line(name, value, user))
        elif text is not None:
            self.constants.append(f"{name} = {text}")
        elif self._defined_here(value) and isinstance(value, types.FunctionType):
            self.add_function(value, f"{name} (used by {user})", bound_as=name)
        elif self._defined_here(value) and isinstance(value, type):
            self.add_class(value, f"{name} (used by {user})", name)
        else:
            line = object_import(name, value)
            if line is None:
                raise ConfigError(f"{user} uses the global {name} (a {_describe(value)}), which reglab cannot "
                                  f"save with the run as source; compute it inside {user}, or make it a constant "
                                  f"(numbers, text, lists of them) or a default value (def {user}(units=64):)")
            self.imports.append(line)

    @staticmethod
    def _module_line(name: str, module: types.ModuleType, user: str) -> str:
        line = module_import(name, module)
        if line is None:
            raise ConfigError(f"{user} uses the module {name}, which cannot be imported by its name "
                              f"{brief(getattr(module, '__name__', None))}; import it from a package or a .py file")
        return line

    def _defined_here(self, value: Any) -> bool:
        if isinstance(value, types.FunctionType):
            return value.__globals__ is self.namespace
        return isinstance(value, type) and value.__module__ == self.namespace.get("__name__")

    def text(self) -> str:
        parts = [HEADER]
        if self.imports:
            parts.append("\n".join(self.imports) + "\n")
        if self.constants:
            parts.append("\n".join(self.constants) + "\n")
        return "\n".join(parts) + "".join(f"\n\n{d.rstrip()}\n" for d in self.definitions)


def source_of(fn: Callable[[], Any]) -> str:
    """A self-contained module defining `fn` (see the module's docstring); a one-line ConfigError for what
    cannot be saved."""
    name = getattr(fn, "__name__", "the function")
    check_function(fn, "the function" if name == "<lambda>" else name)
    module = _Module(fn.__globals__)
    module.add_function(fn, fn.__name__)
    return module.text()


# ---------------------------------------------------------------- a model given as a function or an instance

def _one_line(e: BaseException) -> str:
    text = re.sub(r"\s+", " ", f"{type(e).__name__}: {e}").strip()
    return text if len(text) <= 200 else text[:199] + "…"


def _build(fn: Callable[[], Any], what: str) -> Any:
    from reglab._keras import keras

    try:
        model = fn()
    except Exception as e:  # the user's code: any error becomes one line
        raise ConfigError(f"{what} raised {_one_line(e)}") from None
    if not isinstance(model, keras.Model):
        raise ConfigError(f"{what} returned {_describe(model)}, not a Keras model")
    return model


def _instance_source(model: Any) -> ModelSource:
    """A model given as an object: its JSON config, rebuilt per arm with fresh weights."""
    from reglab._keras import keras

    try:
        text = model.to_json()
        keras.models.model_from_json(text)
    except Exception as e:  # a subclassed model without get_config, a layer or function Keras cannot rebuild
        raise ConfigError(f"this Keras model cannot be rebuilt from its config ({_one_line(e)}); pass a function "
                          "that builds it instead: def build_model(): ...") from None
    body = (f"import keras\n\nMODEL_JSON = {text!r}\n\n\ndef build_model():\n"
            "    return keras.models.model_from_json(MODEL_JSON)\n")
    return ModelSource(f"{HEADER}\n{body}", "build_model")


def _check_params(fn: Any) -> None:
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return
    required = [p.name for p in params if p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    if required:
        raise ConfigError(f"{fn.__name__} must take no arguments (reglab calls it once per arm), but it needs "
                          f"{', '.join(required)}; give them default values")


def model_source(build: Any) -> ModelSource:
    """The module a sweep saves for `build` (a function returning a Keras model, or an uncompiled Keras model),
    checked: run in a fresh namespace, it builds a model whose config is the original's."""
    from reglab._keras import keras

    if isinstance(build, keras.Model):
        saved, original, module = _instance_source(build), build, "reglab_saved_model"
    else:
        check_function(build, "build_model")
        _check_params(build)
        saved = ModelSource(source_of(build), build.__name__)
        original, module = _build(build, build.__name__), build.__module__
    check_saved(saved, original, module)
    return saved


def check_saved(saved: ModelSource, original: Any, module_name: str) -> None:
    """Run the saved text in a fresh namespace (named as the original's module, so custom classes serialize
    alike) and compare the model it builds with `original`."""
    namespace: dict[str, Any] = {"__name__": module_name}
    try:
        exec(compile(saved.text, f"<reglab: saved source of {saved.name}>", "exec"), namespace)
    except Exception as e:  # the saved text is ours, the code in it the user's
        raise ConfigError(f"the saved source of {saved.name} does not run on its own ({_one_line(e)}); {ADVICE}") from None
    rebuilt = _build(namespace[saved.name], f"the saved source of {saved.name}")
    if canonical_config(rebuilt.get_config()) != canonical_config(original.get_config()):
        raise ConfigError(f"the saved source of {saved.name} builds another model than {saved.name} does (their Keras "
                          f"configs differ): it reads something the saved source does not have; {ADVICE}")


def canonical_config(config: Any) -> Any:
    """A model's config with every name (`"name": ...` and the references to it) numbered in order of first
    appearance: Keras names layers from a process-wide counter, so two builds of one model differ only there."""
    names: dict[str, str] = {}

    def collect(node: Any) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("name"), str):
                names.setdefault(node["name"], f"<name {len(names)}>")
            for value in node.values():
                collect(value)
        elif isinstance(node, (list, tuple)):
            for value in node:
                collect(value)

    def swap(node: Any) -> Any:
        if isinstance(node, dict):
            return {key: swap(value) for key, value in node.items()}
        if isinstance(node, (list, tuple)):
            return [swap(value) for value in node]
        return names.get(node, node) if isinstance(node, str) else node

    collect(config)
    return swap(config)


__all__ = ["ModelSource", "canonical_config", "check_saved", "model_source", "source_of"]
