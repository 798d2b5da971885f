"""kubectl_aicr.kubelazy: the lazy ``kubernetes`` import gives the very objects of the normal one, falls back to
the normal import when the package is not the pinned release or not laid out as expected, and is installed by the
cluster connection only. Each check runs in a fresh interpreter (an import can be made only once per process)."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from kubectl_aicr import kubelazy

ROOT = Path(__file__).resolve().parents[2]

#: What each name of the three packages is, in terms that can cross a process boundary.
_DESCRIBE = """
import json, sys, types
def describe(obj):
    if isinstance(obj, types.ModuleType):
        return "module " + obj.__name__
    if isinstance(obj, (str, int, float, bool, type(None))):
        return "value " + repr(obj)
    return "%s %s.%s" % (type(obj).__name__, getattr(obj, "__module__", "?"), getattr(obj, "__qualname__", "?"))
#: Names that differ by nature between two imports (the loader objects, the namespace of builtins).
SKIP = {"__builtins__", "__loader__", "__spec__", "__getattr__", "__dir__"}
"""

_NORMAL = (
    _DESCRIBE
    + """
import kubernetes, kubernetes.client, kubernetes.client.models
out = {}
for pkg in ("kubernetes", "kubernetes.client", "kubernetes.client.api", "kubernetes.client.models"):
    mod = sys.modules[pkg]
    out[pkg] = {n: describe(getattr(mod, n)) for n in dir(mod) if n not in SKIP}
print(json.dumps(out))
"""
)

_LAZY = (
    _DESCRIBE
    + """
from kubectl_aicr import kubelazy
assert kubelazy.install()
import kubernetes.client
expected = json.loads(sys.stdin.read())
problems = []
for pkg, names in expected.items():
    mod = sys.modules[pkg]
    if not kubelazy.is_lazy(mod):
        problems.append(pkg + " was not imported lazily")
    for n, what in names.items():
        got = describe(getattr(mod, n))
        if got != what:
            problems.append("%s.%s: %s, normally %s" % (pkg, n, got, what))
    # What the real __init__ binds, run against the same sys.modules: every name is the identical object.
    real = {"__name__": pkg, "__package__": pkg, "__path__": list(mod.__path__)}
    exec(compile(mod.__spec__.loader.get_source(pkg), mod.__file__, "exec"), real)
    for n, obj in real.items():
        if n in SKIP or n in ("__package__", "__path__"):
            continue
        got = getattr(mod, n)
        if got is not obj and not (isinstance(obj, (str, int)) and type(got) is type(obj) and got == obj):
            problems.append("%s.%s is not the object the real __init__ binds" % (pkg, n))
    if mod.__spec__.loader is not mod.__loader__ or type(mod.__loader__).__module__.startswith("kubectl_aicr"):
        problems.append(pkg + ": the loader is not the real one")
print(json.dumps(problems))
"""
)


def _py(code: str, *, stdin: str = "", env: dict[str, str] | None = None, path: str | None = None) -> str:
    environ = {k: v for k, v in os.environ.items() if k != kubelazy.EAGER_ENV}
    environ.update(env or {})
    environ["PYTHONPATH"] = os.pathsep.join(p for p in (path, str(ROOT)) if p)
    r = subprocess.run(
        [sys.executable, "-c", code], input=stdin, capture_output=True, text=True, timeout=120, env=environ, cwd=ROOT
    )
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_every_name_of_the_real_packages_resolves_to_the_identical_object() -> None:
    normal = _py(_NORMAL)
    names = json.loads(normal)
    assert len(names["kubernetes.client"]) > 700 and "V1Node" in names["kubernetes.client.models"]
    assert json.loads(_py(_LAZY, stdin=normal)) == []


def test_the_client_works_through_the_lazy_packages() -> None:
    out = _py(
        textwrap.dedent(
            """
            import json, sys
            from kubectl_aicr import kubelazy
            kubelazy.install()
            import kubernetes
            from kubernetes import client, config, watch
            from kubernetes.config.kube_config import KubeConfigLoader

            class Response:
                def __init__(self, body):
                    self.data = json.dumps(body)

            api = client.ApiClient()
            node = api.deserialize(Response({"kind": "Node", "metadata": {"name": "n1"},
                                             "status": {"capacity": {"nvidia.com/gpu": "8"}}}), "V1Node")
            job = api.deserialize(Response({"kind": "Job", "metadata": {"name": "j"},
                                            "spec": {"template": {"spec": {"containers": [{"name": "c"}]}}}}), "V1Job")
            cfg = client.Configuration()
            KubeConfigLoader(config_dict={
                "current-context": "c", "contexts": [{"name": "c", "context": {"cluster": "k", "user": "u"}}],
                "clusters": [{"name": "k", "cluster": {"server": "https://example.invalid:6443"}}],
                "users": [{"name": "u", "user": {"token": "t"}}]}).load_and_set(cfg)
            event = watch.Watch().unmarshal_event(
                json.dumps({"type": "ADDED", "object": {"kind": "Pod", "metadata": {"name": "p"}}}), "V1Pod")
            models = sorted(m for m in sys.modules if m.startswith("kubernetes.client.models."))
            print(json.dumps({
                "version": kubernetes.__version__, "client_version": client.__version__,
                "node": [type(node).__name__, node.metadata.name, node.status.capacity["nvidia.com/gpu"]],
                "job": [type(job).__name__, job.spec.template.spec.containers[0].name],
                "host": cfg.host,
                "event": [event["type"], type(event["object"]).__name__, event["object"].metadata.name],
                "config_exception": config.ConfigException.__module__,
                "lazy": [kubelazy.is_lazy(m) for m in (kubernetes, client, client.api, client.models)],
                "models_loaded": len(models),
            }))
            """
        )
    )
    got = json.loads(out)
    assert got["version"] == got["client_version"] == kubelazy.PINNED
    assert got["node"] == ["V1Node", "n1", "8"] and got["job"] == ["V1Job", "c"]
    assert got["host"] == "https://example.invalid:6443" and got["event"] == ["ADDED", "V1Pod", "p"]
    assert got["config_exception"] == "kubernetes.config.config_exception" and got["lazy"] == [True] * 4
    assert 0 < got["models_loaded"] < 200  # of some 720: only those the calls above needed


_FALLBACK = """
import json, sys
from kubectl_aicr import kubelazy
installed = kubelazy.install(%r)
import kubernetes.client
print(json.dumps({"installed": installed, "lazy": [kubelazy.is_lazy(sys.modules[p]) for p in kubelazy.LAZY],
                  "eager": "V1Node" in vars(kubernetes.client), "node": kubernetes.client.V1Node.__module__}))
"""


def test_another_release_is_imported_the_normal_way() -> None:
    got = json.loads(_py(_FALLBACK % "0.0.0"))
    assert got == {"installed": True, "lazy": [False] * 4, "eager": True, "node": got["node"]}
    assert got["node"] == "kubernetes.client.models.v1_node"


def test_the_environment_can_disable_it() -> None:
    got = json.loads(_py(_FALLBACK % kubelazy.PINNED, env={kubelazy.EAGER_ENV: "1"}))
    assert got["installed"] is False and got["lazy"] == [False] * 4 and got["eager"] is True


def _package(root: Path, files: dict[str, str]) -> str:
    for rel, text in files.items():
        f = root / rel
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(textwrap.dedent(text), encoding="utf-8")
    return str(root)


def test_a_package_laid_out_otherwise_is_imported_the_normal_way(tmp_path: Path) -> None:
    """A stand-in ``kubernetes`` of the pinned release: its top level and models are plain imports (lazy), its
    client ``__init__`` does more than import (run for real)."""
    path = _package(
        tmp_path,
        {
            "kubernetes/__init__.py": f'"""Top."""\n__version__ = "{kubelazy.PINNED}"\nfrom . import client\n',
            "kubernetes/client/__init__.py": "from kubernetes.client.models.thing import Thing\nprint('RAN')\n",
            "kubernetes/client/models/__init__.py": "from kubernetes.client.models.thing import Thing as Alias\n",
            "kubernetes/client/models/thing.py": "class Thing:\n    pass\n",
        },
    )
    out = _py(
        "import sys\nfrom kubectl_aicr import kubelazy\nkubelazy.install()\nimport kubernetes\nprint('IMPORTED')\n"
        "print(kubernetes.__doc__, kubelazy.is_lazy(kubernetes), kubelazy.is_lazy(kubernetes.client))\n"
        "m = kubernetes.client.models\n"
        "print(kubelazy.is_lazy(m), m.Alias is kubernetes.client.Thing, 'thing' in dir(m))",
        path=path,
    )
    assert out.split() == ["IMPORTED", "RAN", "Top.", "True", "False", "True", "True", "True"]


@pytest.mark.parametrize(
    "source",
    [
        "from os import *\n",
        "x = f()\n",
        "import os\n",
        "if True:\n    from os import path\n",
        "def f():\n    pass\n",
        "from .. import x\n",  # above the top-level package
        "1\n",
        "(\n",
    ],
)
def test_a_plan_is_only_made_of_imports_and_constants(source: str) -> None:
    assert kubelazy.plan_of(source, "pkg") is None


def test_a_plan_binds_what_the_statements_bind_last() -> None:
    source = '"""Doc."""\nfrom __future__ import annotations\nV = "1"\nfrom .a import b as V, c\nfrom x.y import c\n'
    constants, names = kubelazy.plan_of(source, "pkg") or ({}, {})
    assert constants == {"__doc__": "Doc."}
    assert names == {"annotations": ("__future__", "annotations"), "V": ("pkg.a", "b"), "c": ("x.y", "c")}


def _ast_plan(source: str, package: str) -> Any:
    """The plan as :mod:`ast` alone reads it (the line-by-line reading must give exactly this)."""
    fast = kubelazy._statements
    kubelazy._statements = _ast_statements
    try:
        return kubelazy.plan_of(source, package)
    finally:
        kubelazy._statements = fast


def _ast_statements(source: str) -> Any:
    try:
        return list(ast.parse(source).body)
    except SyntaxError:
        return None


@pytest.mark.parametrize(
    "source",
    [
        '# c\n"""Doc."""\nfrom __future__ import annotations\nV = 1\nfrom .a import b\n\n# x\n'
        "from x.y import c as d, e\n",
        "from . import a  # noqa\nfrom .. import b\nfrom .c.d import e\n   # indented comment\n",
        '"""Doc that quotes\nfrom a import b\n"""\nfrom c import d\n',  # a from-line inside the docstring
        'from a import b\nX = """\nfrom c import d\n"""\nfrom e import f\n',  # ... inside a later string
        "from a import b\nfrom c import (d,\n    e)\nfrom f import g\n",
        "from a import b\nfrom c \\\n  import d\n",
        "V = [\nfrom a import b\n]\n",
        "from a import b\nfrom __future__ import annotations\n",  # SyntaxError: future import not first
        "from a import if\n",  # keyword
        "from a.class import b\n",
        "from a import b as\tc,\td\n",
        "from a import b; from c import d\n",
        "from a import b\nx = 1\nfrom c import d\n",
        "from a import b\nfrom c import *\n",
        "if True:\n    V = 1\nfrom a import b\n",
        "from a import b\n    from c import d\n",  # IndentationError
        "from a import b\r\nfrom c import d\r\n",
        "",
    ],
)
def test_the_line_by_line_plan_is_the_ast_plan(source: str) -> None:
    assert kubelazy.plan_of(source, "pkg.sub") == _ast_plan(source, "pkg.sub")


def test_the_real_packages_plans_are_read_line_by_line_as_ast_reads_them() -> None:
    import importlib.util

    for pkg in kubelazy.LAZY:
        spec = importlib.util.find_spec(pkg)
        assert spec is not None and spec.loader is not None
        source = spec.loader.get_source(pkg)  # type: ignore[attr-defined]
        fast = kubelazy.plan_of(source, pkg)
        assert fast is not None and fast == _ast_plan(source, pkg)
        if len(fast[1]) > 60:  # the generated client, api and models: the one-line imports are read without ast
            body = kubelazy._statements(source) or []
            assert sum(isinstance(node, tuple) for node in body) >= len(fast[1]) - 5


def _probe(code: str) -> Any:
    return json.loads(_py(code).strip().splitlines()[-1])


def test_only_connecting_installs_it(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "config"
    kubeconfig.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": "c",
                "contexts": [{"name": "c", "context": {"cluster": "k", "user": "u"}}],
                "clusters": [{"name": "k", "cluster": {"server": "https://127.0.0.1:1"}}],
                "users": [{"name": "u", "user": {"token": "t"}}],
            }
        ),
        encoding="utf-8",
    )
    got = _probe(
        "import json, sys\n"
        "from kubectl_aicr.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "before = 'kubectl_aicr.kubelazy' in sys.modules\n"
        "from kubectl_aicr import kube, kubelazy\n"
        f"k = kube.connect(kube.KubeOptions(kubeconfig={str(kubeconfig)!r}))\n"
        "k.core, k.batch, k.rbac, k.authz\n"
        "print(json.dumps([before, k.server, [kubelazy.is_lazy(sys.modules[p]) for p in kubelazy.LAZY]]))"
    )
    assert got == [False, "https://127.0.0.1:1", [True] * 4]
