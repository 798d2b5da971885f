"""The house rules of the code's layering, as contracts checked on the source (``ast``; nothing is imported).

Every ``.py`` file under ``kubectl_aicr/`` and ``collector/`` is read, today's and tomorrow's: the rules are written
by module-name patterns, not by a list of files, so a module that moves or a new one is held to them at once.

1. :mod:`collector` (what runs on a host) imports neither ``kubectl_aicr`` nor click, anywhere.
2. The pure layers (:data:`PURE`: the wire format and its versions, the schema checks, the diff engine and its
   renderers, the policy model and engine, the reports, the errors, the scheduler's decisions) import neither click
   nor the Kubernetes client (nor urllib3), not even inside a function, and of this project only other pure modules.
3. ``kubernetes`` and ``jsonschema`` are imported only inside functions, so ``--help``, ``diff`` and ``validate``
   start without them (the import-cost tests measure it; this says where).
4. No import cycle, counting imports inside functions. Imports under ``if TYPE_CHECKING:`` never run and do not
   count; neither does the root group's table of commands (:mod:`kubectl_aicr.group`, imported by name).

A file that breaks a rule today is named in :data:`KNOWN` with the reason; a test fails once it no longer breaks
it, so the list only shrinks. That every sub-command's ``--help`` runs is in tests/unit/test_cli.py.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("kubectl_aicr", "collector")

#: Module-name patterns (:func:`matches`) of the pure layers. ``kubectl_aicr.diff*`` is today's module and renderer and
#: tomorrow's package; ``*schema`` is the JSON Schema checks (schema, quickschema). The package roots hold only the
#: version and the Python version check.
PURE = (
    "kubectl_aicr",
    "collector",
    "collector.model",
    "collector.keys",
    "collector.keys.*",
    "kubectl_aicr.errors",
    "kubectl_aicr.formats",
    "kubectl_aicr.formats.*",
    "kubectl_aicr.fastyaml",
    "kubectl_aicr.*schema",
    "kubectl_aicr.diff",
    "kubectl_aicr.diff.*",
    "kubectl_aicr.diff_*",
    "kubectl_aicr.policy",
    "kubectl_aicr.policy.*",
    "kubectl_aicr.reports",
    "kubectl_aicr.reports.*",
    "kubectl_aicr.deploy.classify",
    "kubectl_aicr.deploy.scheduler",
    "kubectl_aicr.deploy.spec",
    "kubectl_aicr.deploy.flags",
)
#: Not for the pure layers: the command line and the Kubernetes client (with its HTTP library).
NOT_PURE = ("click", "kubernetes", "urllib3")
#: Imported only inside functions, everywhere.
LAZY = ("kubernetes", "jsonschema")

#: (rule, module, imported module) -> why it is allowed for now. Each must still be a violation.
KNOWN: dict[tuple[str, str, str], str] = {
    (
        "pure",
        "kubectl_aicr.deploy.spec",
        "kubectl_aicr.cmstore",
    ): "the staging ConfigMaps' names and labels come from cmstore, which also holds its Kubernetes I/O",
}


@dataclass(frozen=True)
class Import:
    importer: str
    target: str  # a module of this project, or the top-level name of another package
    in_function: bool
    line: int


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def sources() -> dict[str, Path]:
    found = {
        module_name(p): p
        for pkg in PACKAGES
        for p in sorted((ROOT / pkg).rglob("*.py"))
        if "__pycache__" not in p.parts
    }
    assert "kubectl_aicr.cli" in found and "collector.model" in found
    return found


MODULES = sources()


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _resolve(name: str) -> str:
    """A module of this project as itself; any other module as its top-level package (``kubernetes``)."""
    if name.split(".")[0] not in PACKAGES:
        return name.split(".")[0]
    while name not in MODULES and "." in name:  # e.g. 'from kubectl_aicr.errors import X' names the module
        name = name.rsplit(".", 1)[0]
    return name


def imports_of(module: str) -> list[Import]:
    path = MODULES[module]
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: list[Import] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child.test):
                for stmt in child.orelse:
                    visit(stmt, in_function)
                continue
            if isinstance(child, ast.Import):
                found.extend(Import(module, _resolve(a.name), in_function, child.lineno) for a in child.names)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    anchor = package.split(".")[: len(package.split(".")) - child.level + 1]
                    base = ".".join([*anchor, base] if base else anchor)
                for alias in child.names:  # 'from pkg import submodule' imports the submodule
                    sub = f"{base}.{alias.name}"
                    found.append(Import(module, _resolve(sub if sub in MODULES else base), in_function, child.lineno))
            inner = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            visit(child, inner)

    visit(tree, False)
    return found


IMPORTS = {m: imports_of(m) for m in MODULES}


def _pattern(pattern: str) -> re.Pattern[str]:
    """``*`` stands for part of one name; a trailing ``.*`` for everything below (``kubectl_aicr.diff.*``)."""
    below = pattern.endswith(".*")
    body = pattern[:-2] if below else pattern
    regex = "[^.]*".join(re.escape(part) for part in body.split("*"))
    return re.compile(regex + (r"\..+" if below else "") + r"\Z")


def matches(module: str, patterns: tuple[str, ...]) -> bool:
    return any(_pattern(p).match(module) for p in patterns)


def violations() -> dict[tuple[str, str, str], str]:
    """Every broken rule: (rule, module, imported module) -> where."""
    found: dict[tuple[str, str, str], str] = {}

    def add(rule: str, imp: Import) -> None:
        found.setdefault((rule, imp.importer, imp.target), f"{MODULES[imp.importer].relative_to(ROOT)}:{imp.line}")

    for module, imports in IMPORTS.items():
        for imp in imports:
            top = imp.target.split(".")[0]
            if module.startswith("collector") and top in ("kubectl_aicr", "click"):
                add("collector", imp)
            if matches(module, PURE) and (top in NOT_PURE or (top in PACKAGES and not matches(imp.target, PURE))):
                add("pure", imp)
            if top in LAZY and not imp.in_function:
                add("lazy", imp)
    return found


FOUND = violations()


def unexpected(rule: str) -> list[str]:
    return [
        f"{where}: {module} imports {target}"
        for (r, module, target), where in sorted(FOUND.items())
        if r == rule and (r, module, target) not in KNOWN
    ]


def test_collector_imports_neither_the_cli_nor_click() -> None:
    assert unexpected("collector") == []


def test_pure_modules_import_no_click_no_kubernetes_and_only_pure_modules() -> None:
    assert unexpected("pure") == []


def test_kubernetes_and_jsonschema_are_imported_only_inside_functions() -> None:
    assert unexpected("lazy") == []


@pytest.mark.parametrize("key", sorted(KNOWN), ids=lambda k: ":".join(k))
def test_each_known_exception_is_still_needed(key: tuple[str, str, str]) -> None:
    assert key in FOUND, f"{key} no longer breaks its rule: remove it from KNOWN ({KNOWN[key]})"


def cycles() -> list[list[str]]:
    """Every strongly connected group of two or more modules (Tarjan), plus modules that import themselves."""
    graph = {m: sorted({i.target for i in imps if i.target in MODULES}) for m, imps in IMPORTS.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1 or v in graph[v]:
                groups.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            connect(v)
    return sorted(groups)


def test_no_import_cycles_counting_imports_inside_functions() -> None:
    assert cycles() == []


# ------------------------------------------------------------------------------------ the checker itself can fail
def test_the_checker_sees_function_level_and_relative_imports(tmp_path: Path) -> None:
    assert any(i.target == "kubernetes" and i.in_function for i in IMPORTS["kubectl_aicr.kube"])
    assert {"kubectl_aicr.errors", "kubectl_aicr.group"} <= {i.target for i in IMPORTS["kubectl_aicr.cli"]}
    assert any(i.target == "kubectl_aicr.completion" and i.in_function for i in IMPORTS["kubectl_aicr.cli"])
    assert not any(
        i.target == "kubectl_aicr.cli"
        for imps in IMPORTS.values()
        for i in imps
        if i.importer != "kubectl_aicr.__main__"
    )  # only `python -m kubectl_aicr` runs the entry point
    assert matches("kubectl_aicr.diff.engine", PURE) and matches("kubectl_aicr.policy.model", PURE)
    assert matches("kubectl_aicr.quickschema", PURE) and matches("kubectl_aicr.reports.junit", PURE)
    assert not matches("kubectl_aicr.commands.diff", PURE) and not matches("kubectl_aicr.kube", PURE)
    assert not matches("kubectl_aicr.commands.schema", PURE) and not matches("kubectl_aicr.policy_x", PURE)
