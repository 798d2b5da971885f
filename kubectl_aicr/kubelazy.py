"""A lazy import of the ``kubernetes`` package: the same objects, loaded on first use.

The package's ``__init__`` files import everything eagerly: ``kubernetes`` imports all of its sub-packages,
``kubernetes.client`` and ``kubernetes.client.api`` every API class and ``kubernetes.client.models`` some 720 model
modules, about 0.4 s of CPU and 1,271 modules for a command that uses a few of them. :func:`install` puts a finder
first on :data:`sys.meta_path` that imports those four packages (:data:`LAZY`) as the same modules (same ``__spec__``,
``__file__``, ``__path__``, ``__doc__``, constants) whose other names are resolved on first access, each from the
``from X import Y [as Z]`` statement of the real ``__init__`` file that binds it, and cached in the module: the
object a name resolves to is the one the real ``__init__`` binds, because it is found by that very statement.
The plan of a generated ``__init__`` (hundreds of one-line ``from`` imports) is read line by line where that gives
what :mod:`ast` would, which costs half as much as parsing it.
A submodule not named in the file (``kubernetes.client.rest``) is imported on first access, as ``import
kubernetes.client.rest`` would.

Robust by construction: a package is imported lazily only when the installed ``kubernetes`` is the pinned
:data:`PINNED` release and the package's ``__init__`` holds nothing but a docstring, ``from`` imports and
assignments of constants (what a plan is made of); anything else (another release, a changed layout, source not
readable) falls back to the normal import, per package. The finder defers to the other finders for where the
package lies, so it works wherever the package is importable from (a virtualenv, the shiv zipapp's site-packages).

``import kubectl_aicr.kubelazy`` costs nothing; nothing is installed until :func:`install` is called
(:mod:`kubectl_aicr.kube` calls it before it first imports ``kubernetes``, so ``--help``, ``diff`` and
``validate`` never pay for this either). ``AICR_KUBE_EAGER=1`` in the environment disables it.
"""

from __future__ import annotations

import ast
import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import keyword
import os
import re
import sys
import threading
from types import ModuleType
from typing import Any, Callable, Optional, Sequence

#: The one ``kubernetes`` release whose ``__init__`` files the plans were checked against (requirements pin it).
PINNED = "35.0.0"
#: The packages imported lazily; every other ``kubernetes`` module imports normally. ``kubernetes.client.api``
#: imports all 66 API classes (~25 ms) where a command uses four.
LAZY = ("kubernetes", "kubernetes.client", "kubernetes.client.api", "kubernetes.client.models")
#: Set (to anything but "" or "0") to import ``kubernetes`` the normal way.
EAGER_ENV = "AICR_KUBE_EAGER"

#: (module the name comes from, attribute of it) for each name an ``__init__`` binds by import.
Plan = dict[str, tuple[str, str]]

_lock = threading.Lock()


#: One line that is a complete ``from X import a [as b], ...`` statement and nothing else (a comment may follow).
#: Identifiers are ASCII here; anything else (a keyword as a name is checked apart) is left to :mod:`ast`.
_FROM_LINE = re.compile(
    r"from[ \t]+(\.*)([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)?[ \t]+import[ \t]+"
    r"([A-Za-z_]\w*(?:[ \t]+as[ \t]+[A-Za-z_]\w*)?(?:[ \t]*,[ \t]*[A-Za-z_]\w*(?:[ \t]+as[ \t]+[A-Za-z_]\w*)?)*)"
    r"[ \t]*(?:#.*)?",
    re.ASCII,
)
_KEYWORDS = frozenset(keyword.kwlist)


def _simple_from(line: str) -> Optional[tuple[int, Optional[str], list[tuple[str, Optional[str]]]]]:
    """(level, module, [(name, asname)]) when ``line`` is one plain from-import statement (``__future__`` imports
    excepted: they are only valid at the top), else None."""
    m = _FROM_LINE.fullmatch(line)
    if m is None:
        return None
    dots, module, listed = m.groups()
    if module == "__future__" or not (dots or module):
        return None
    if "," in listed or " as" in listed or "\tas" in listed:
        aliases: list[tuple[str, Optional[str]]] = []
        for part in listed.split(","):
            words = part.split()  # [name] or [name, "as", asname]
            aliases.append((words[0], words[2] if len(words) == 3 else None))
    else:
        aliases = [(listed, None)]
    if not _KEYWORDS.isdisjoint((module or "").split(".")) or not _KEYWORDS.isdisjoint(
        [n for pair in aliases for n in pair if n]
    ):
        return None
    return len(dots), module, aliases


def _statements(source: str) -> Optional[list[Any]]:
    """The module's top-level statements, or None where ``ast.parse`` fails: :mod:`ast` nodes, except that the plain
    one-line from-imports that make up the rest of a generated ``__init__`` come as ``(level, module, aliases)``,
    read by a regular expression (``ast.parse`` of the client's ~800 lines costs ~10 ms a package).

    The source is split at its first such line: the head before it (docstring, constants, ``__future__``) goes
    through :mod:`ast`. Only when the head is a complete module by itself and every line after the split is one such
    statement, a comment or blank, the two are the whole module's statements (no string or bracket can be open across
    the split, or the head would not parse); otherwise the whole source goes through :mod:`ast`."""
    lines = source.split("\n")  # get_source has translated every newline to \n
    split = next((i for i, line in enumerate(lines) if _simple_from(line) is not None), None)
    if split is not None:
        rest: list[Any] = []
        for line in lines[split:]:
            stripped = line.strip()
            if not stripped or stripped.startswith("#"):
                continue
            parsed = _simple_from(line)
            if parsed is None:
                break
            rest.append(parsed)
        else:
            try:
                return [*ast.parse("\n".join(lines[:split])).body, *rest]
            except (SyntaxError, ValueError):
                pass
    try:
        return list(ast.parse(source).body)
    except (SyntaxError, ValueError):
        return None


def plan_of(source: str, package: str) -> Optional[tuple[dict[str, Any], Plan]]:
    """What the ``__init__`` source of ``package`` binds: (constants, including ``__doc__``; imported names),
    or None when it does anything else (then only the real ``__init__`` can be trusted)."""
    body = _statements(source)
    if body is None:
        return None
    constants: dict[str, Any] = {}
    names: Plan = {}
    bases: dict[str, str] = {}  # the module each from-import names, resolved once
    for i, node in enumerate(body):
        if isinstance(node, tuple):
            level, module, aliases = node
        elif isinstance(node, ast.ImportFrom):
            level, module = node.level, node.module
            aliases = [(a.name, a.asname) for a in node.names]
        else:
            aliases = None
        if aliases is not None:
            if any(name == "*" for name, _ in aliases):
                return None
            relative = "." * level + (module or "")
            base = bases.get(relative) or _resolve_name(relative, package)
            if base is None:
                return None
            bases[relative] = base
            for name, asname in aliases:
                bound = asname or name
                names[bound] = (base, name)
                constants.pop(bound, None)
            continue
        if i == 0 and isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            if isinstance(node.value.value, str):
                constants["__doc__"] = node.value.value
                continue
            return None
        if (
            isinstance(node, ast.Assign)
            and len(node.targets) == 1
            and isinstance(node.targets[0], ast.Name)
            and isinstance(node.value, ast.Constant)
        ):
            constants[node.targets[0].id] = node.value.value
            names.pop(node.targets[0].id, None)
            continue
        return None
    constants.setdefault("__doc__", None)
    return constants, names


def _resolve_name(relative: str, package: str) -> Optional[str]:
    try:
        return importlib.util.resolve_name(relative, package)
    except (ImportError, ValueError):
        return None


def _resolve(module: ModuleType, base: str, attr: str) -> Any:
    """What ``from base import attr`` binds, executed inside ``module`` (the package being imported lazily)."""
    if base == module.__name__:
        # `from . import client`: a submodule (importing it sets the attribute on the package).
        return importlib.import_module(f"{base}.{attr}")
    source = importlib.import_module(base)
    try:
        return getattr(source, attr)
    except AttributeError:
        return importlib.import_module(f"{base}.{attr}")


def _attach(module: ModuleType, constants: dict[str, Any], names: Plan) -> None:
    """Make ``module`` the lazy form of its package: constants now, ``names`` on first access."""
    module.__dict__.update(constants)

    def __getattr__(name: str) -> Any:
        # No lock of our own: the import system serialises imports, and two threads resolving one name at once
        # get (and cache) the same object.
        where = names.get(name)
        if where is not None:
            value = _resolve(module, *where)
        elif not name.startswith("__") and importlib.util.find_spec(f"{module.__name__}.{name}") is not None:
            value = importlib.import_module(f"{module.__name__}.{name}")
        else:
            raise AttributeError(f"module {module.__name__!r} has no attribute {name!r}")
        setattr(module, name, value)
        return value

    def __dir__() -> list[str]:
        return sorted(set(module.__dict__) | set(names))

    module.__dict__["__getattr__"] = __getattr__
    module.__dict__["__dir__"] = __dir__


class _Loader(importlib.abc.Loader):
    """Executes a package's ``__init__`` lazily when its plan holds, else as the real loader would."""

    def __init__(self, real: Any, enabled: Callable[[], bool]) -> None:
        self.real = real
        self.enabled = enabled

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> Optional[ModuleType]:
        create = getattr(self.real, "create_module", None)
        return create(spec) if create is not None else None

    def exec_module(self, module: ModuleType) -> None:
        spec = module.__spec__
        assert spec is not None
        spec.loader = module.__loader__ = self.real  # looks like (and reloads as) the real module
        made = self.enabled() and _source_plan(self.real, spec.name)
        if not made:
            self.real.exec_module(module)
            return
        _attach(module, *made)


def _source_plan(loader: Any, name: str) -> Optional[tuple[dict[str, Any], Plan]]:
    try:
        source = loader.get_source(name)
    except Exception:
        return None
    return plan_of(source, name) if isinstance(source, str) else None


class _Finder(importlib.abc.MetaPathFinder):
    """First on :data:`sys.meta_path`: finds the :data:`LAZY` packages through the other finders and gives them
    a :class:`_Loader`."""

    def __init__(self, version: str) -> None:
        self.version = version
        self.checked: Optional[bool] = None  # the installed release is the pinned one (known at the first find)

    def _pinned(self) -> bool:
        return bool(self.checked)

    def find_spec(
        self, fullname: str, path: Optional[Sequence[str]], target: Optional[ModuleType] = None
    ) -> Optional[importlib.machinery.ModuleSpec]:
        if fullname not in LAZY:
            return None
        spec = _real_spec(self, fullname, path, target)
        if spec is None or spec.loader is None or not spec.submodule_search_locations:
            return spec
        if fullname == "kubernetes":
            plan = _source_plan(spec.loader, fullname)
            self.checked = plan is not None and plan[0].get("__version__") == self.version
        spec.loader = _Loader(spec.loader, self._pinned)
        return spec


def _real_spec(
    me: object, fullname: str, path: Optional[Sequence[str]], target: Optional[ModuleType]
) -> Optional[importlib.machinery.ModuleSpec]:
    for finder in list(sys.meta_path):
        if finder is me or isinstance(finder, _Finder):
            continue
        find = getattr(finder, "find_spec", None)
        if find is None:
            continue
        spec: Optional[importlib.machinery.ModuleSpec] = find(fullname, path, target)
        if spec is not None:
            return spec
    return None


def install(version: str = PINNED) -> bool:
    """Import ``kubernetes`` lazily from now on (idempotent). False when it cannot be: already imported (the
    normal way or lazily before), or disabled by ``AICR_KUBE_EAGER``; a release other than ``version`` is
    detected at the import and imported normally."""
    if os.environ.get(EAGER_ENV, "") not in ("", "0"):
        return False
    with _lock:
        if any(isinstance(f, _Finder) for f in sys.meta_path):
            return True
        if "kubernetes" in sys.modules:
            return False
        sys.meta_path.insert(0, _Finder(version))
        return True


def is_lazy(module: ModuleType) -> bool:
    """Whether ``module`` was imported lazily by this module (for tests and diagnostics)."""
    getter = module.__dict__.get("__getattr__")
    return getattr(getter, "__module__", None) == __name__ and getattr(getter, "__qualname__", "").startswith(
        "_attach."
    )
