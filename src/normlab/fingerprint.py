"""What a result depends on, as one hash: the normlab code it runs and the data it reads.

Used by both ways the book decides whether something must be recomputed: the stamp of an
executed chapter (:mod:`normlab.notebooks`) and the key of a cached training run
(:mod:`normlab.train`). Code enters as syntax trees without docstrings (comments never reach a
syntax tree), so rewording documentation stales nothing. It enters per definition, not per
module: a chapter's fingerprint covers the functions, classes and constants its code names and,
in turn, the normlab definitions those name, so changing a helper re-runs exactly the chapters and
runs that can reach it. Data enters by its contents, not its shape.

The package is parsed once per process and kept: a file edited while a long chapter trains does
not change the keys of the runs that chapter has yet to make.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import re
import types
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

PACKAGE = "normlab"
PACKAGE_DIR = Path(__file__).resolve().parent


@dataclass
class _Module:
    """One normlab module: its top-level definitions and the normlab names it imports."""

    definitions: dict[str, list[ast.AST]] = field(default_factory=dict)
    always: list[ast.AST] = field(default_factory=list)  # statements run at import
    aliases: dict[str, str] = field(default_factory=dict)  # local name -> "module" or "module.name"


def _strip_docstrings(tree: ast.AST) -> ast.AST:
    for node in ast.walk(tree):
        if (isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                and ast.get_docstring(node, clean=False) is not None):
            node.body = node.body[1:] or [ast.Pass()]
    return tree


def _import_aliases(node: ast.AST, modules) -> dict[str, str]:
    """The normlab names an import statement binds: ``from normlab import data`` -> data."""
    found = {}
    if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
        if node.module == PACKAGE:
            for alias in node.names:
                if alias.name in modules:
                    found[alias.asname or alias.name] = alias.name
        elif node.module.startswith(PACKAGE + "."):
            module = node.module.split(".", 1)[1]
            for alias in node.names:
                found[alias.asname or alias.name] = f"{module}.{alias.name}"
    elif isinstance(node, ast.Import):
        for alias in node.names:
            if alias.name.startswith(PACKAGE + ".") and alias.asname:
                found[alias.asname] = alias.name.split(".", 1)[1]
    return found


def parse_module(source: str, modules=()) -> _Module:
    """Split a module (or a chapter's code) into definitions, import-time code and imports."""
    tree = _strip_docstrings(ast.parse(source))
    module = _Module()
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            module.aliases.update(_import_aliases(node, modules))
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            module.definitions.setdefault(node.name, []).append(node)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names = [n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)]
            for name in names:
                module.definitions.setdefault(name, []).append(node)
        else:
            module.always.append(node)
    return module


@functools.lru_cache(maxsize=1)
def _package() -> dict[str, _Module]:
    names = {p.stem for p in PACKAGE_DIR.glob("*.py") if p.stem != "__main__"}
    return {name: parse_module((PACKAGE_DIR / f"{name}.py").read_text(), names) for name in names}


def _walk(node: ast.AST):
    """``ast.walk`` without type annotations: they name types, they never compute a result."""
    todo = [node]
    while todo:
        node = todo.pop()
        yield node
        skipped = (getattr(node, "annotation", None), getattr(node, "returns", None))
        todo.extend(child for child in ast.iter_child_nodes(node)
                    if all(child is not skip for skip in skipped))


def _references(nodes, module: str, package: dict[str, _Module]) -> set[str]:
    """The normlab definitions ("module.name") that ``nodes`` of ``module`` may use."""
    own = package[module]
    aliases = dict(own.aliases)
    for node in (n for top in nodes for n in _walk(top)):  # imports inside functions
        aliases.update(_import_aliases(node, package))
    found = set()
    for node in (n for top in nodes for n in _walk(top)):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            target = aliases.get(node.value.id)
            if target in package:  # a module: data.load
                found.add(f"{target}.{node.attr}")
        if isinstance(node, ast.Name):
            if node.id in own.definitions:
                found.add(f"{module}.{node.id}")
            elif node.id in aliases and "." in aliases[node.id]:
                found.add(aliases[node.id])
    return found | {f"{target}" for target in aliases.values() if target in package}


def reached(*roots: str, package: dict[str, _Module] | None = None) -> list[str]:
    """Every normlab definition that the ``roots`` ("train.run", or a module: "page") can reach.

    A module counts as reached with its import-time code; names a module does not define (an
    attribute of a class, a dynamic lookup) are ignored.
    """
    package = _package() if package is None else package
    todo, seen = set(roots), set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        module, _, attr = name.partition(".")
        if module not in package:
            raise ValueError(f"{name!r} is not in normlab; modules: {', '.join(sorted(package))}")
        seen.add(name)
        if not attr:
            todo |= _references(package[module].always, module, package) - seen
        elif attr in package[module].definitions:
            todo.add(module)
            todo |= _references(package[module].definitions[attr], module, package) - seen
    return sorted(seen)


def code(*roots: str, package: dict[str, _Module] | None = None) -> str:
    """A hash of the syntax trees (without docstrings) of everything the ``roots`` can reach."""
    package = _package() if package is None else package
    digest = hashlib.sha256()
    for name in reached(*roots, package=package):
        module, _, attr = name.partition(".")
        nodes = package[module].definitions.get(attr, []) if attr else package[module].always
        digest.update(f"\0{name}\0".encode())
        for node in nodes:
            digest.update(ast.dump(node).encode())
    return digest.hexdigest()


_MAGIC = re.compile(r"^(\s*)[!%].*$", re.MULTILINE)


def _builders(package: dict[str, _Module]) -> set[str]:
    """The model names in ``models.BUILDERS``, which a run's config gives as strings."""
    nodes = package["models"].definitions.get("BUILDERS", []) if "models" in package else []
    return {name for node in nodes for name in ast.literal_eval(node.value)}


def chapter_roots(source: str, package: dict[str, _Module] | None = None) -> list[str]:
    """The normlab definitions a chapter's code uses directly (IPython ``!``/``%`` lines aside),
    counting the builder of a run config it writes (``RunConfig(model="small_cnn")``) as used."""
    package = _package() if package is None else package
    chapter = parse_module(_MAGIC.sub(r"\1pass", source), package)
    package = {**package, "__chapter__": chapter}
    everything = [n for nodes in chapter.definitions.values() for n in nodes] + chapter.always
    found = _references(everything, "__chapter__", package)
    named = {node.value.value for top in everything for node in ast.walk(top)
             if isinstance(node, ast.keyword) and node.arg == "model"
             and isinstance(node.value, ast.Constant)}
    found |= {f"models.{name}" for name in named & _builders(package)}
    return sorted(name for name in found if not name.startswith("__chapter__"))


def arrays(*values) -> str:
    """A hash of arrays' contents, shapes and types: two subsets of one size differ."""
    digest = hashlib.sha256()
    for value in values:
        array = np.ascontiguousarray(value)
        digest.update(f"\0{array.dtype.str}{array.shape}\0".encode())
        digest.update(array.data)
    return digest.hexdigest()


def batches(dataset) -> str:
    """A hash of one pass over a ``tf.data`` pipeline, batch by batch, in order."""
    digest = hashlib.sha256()
    for batch in dataset.as_numpy_iterator():
        digest.update(arrays(*batch).encode())
    return digest.hexdigest()


def classes(*kinds: type) -> str:
    """A hash of the code of classes that no library version pins: normlab's by syntax tree (as
    :func:`code`), a chapter's own (defined in ``__main__``) by the bytecode of their methods."""
    digest = hashlib.sha256()
    bases = {base for kind in kinds for base in kind.__mro__}
    for kind in sorted(bases, key=lambda kind: (kind.__module__, kind.__qualname__)):
        if kind.__module__.startswith(PACKAGE + "."):
            digest.update(code(f"{kind.__module__.split('.', 1)[1]}.{kind.__qualname__}").encode())
        elif kind.__module__ == "__main__":
            digest.update(f"\0{kind.__qualname__}\0".encode())
            for name, value in sorted(vars(kind).items()):
                function = getattr(value, "__func__", getattr(value, "fget", value))
                if isinstance(getattr(function, "__code__", None), types.CodeType):
                    digest.update(name.encode())
                    _bytecode(function.__code__, digest)
    return digest.hexdigest()


def _bytecode(code_object: types.CodeType, digest) -> None:
    """What a function does, without where it was defined (a cell's file name changes)."""
    digest.update(code_object.co_code + repr((code_object.co_names, code_object.co_varnames)).encode())
    for constant in code_object.co_consts:
        if isinstance(constant, types.CodeType):
            _bytecode(constant, digest)
        else:
            digest.update(repr(constant).encode())
