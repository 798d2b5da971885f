"""Click options shared by several commands (kubectl's connection flags, output format)."""

from __future__ import annotations

import functools
import math
from typing import Any, Callable

import click

from kubectl_aicr.kube import KubeOptions

F = Callable[..., Any]
#: Where the connection flags that commands do not take as parameters are kept (``click.Context.meta``).
META_KEY = "kubectl_aicr.kube_flags"


def _remember(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    if param.name:
        ctx.meta.setdefault(META_KEY, {})[param.name] = value
    return value


def kube_options(command: F) -> F:
    """kubectl's connection flags, which a plugin must parse itself (``--kubeconfig``, ``--context``,
    ``-n/--namespace``, ``--request-timeout``, ``--cluster``, ``--user``, ``--token``, ``--as``, ``--as-group``),
    handed to the command as one checked :class:`~kubectl_aicr.kube.KubeOptions` parameter named ``kube``."""
    return _kube_options(command, repeat_context=False)


def kube_options_contexts(command: F) -> F:
    """As :func:`kube_options`, with ``--context`` repeatable (``snapshot`` of several clusters): the command also
    gets ``contexts``, every ``--context`` in the order given. With exactly one, ``kube.context`` is it (the
    single-cluster path, unchanged); with none or several, ``kube.context`` is None and the caller picks."""
    return _kube_options(command, repeat_context=True)


def _kube_options(command: F, *, repeat_context: bool) -> F:
    @functools.wraps(command)
    def with_kube_options(
        *args: Any,
        kubeconfig: str | None,
        context: str | tuple[str, ...] | None,
        namespace: str | None,
        request_timeout: float,
        **kwargs: Any,
    ) -> Any:
        if isinstance(context, tuple):
            kwargs["contexts"] = context
            context = context[0] if len(context) == 1 else None
        return command(*args, kube=kube_opts(kubeconfig, context, namespace, request_timeout), **kwargs)

    f: F = with_kube_options
    f = click.option(
        "--as-group",
        multiple=True,
        metavar="GROUP",
        expose_value=False,
        callback=_remember,
        help="Group to impersonate (repeatable; needs --as).",
    )(f)
    for decl, metavar, text in [
        (("--as", "as_user"), "USER", "Username to impersonate for the operation."),
        (("--token",), "TOKEN", "Bearer token for authentication to the API server."),
        (("--user",), "NAME", "kubeconfig user to use (default: the context's)."),
        (("--cluster",), "NAME", "kubeconfig cluster to use (default: the context's)."),
    ]:
        f = click.option(*decl, metavar=metavar, expose_value=False, callback=_remember, help=text)(f)
    f = click.option(
        "--request-timeout",
        type=float,
        default=30.0,
        show_default=True,
        metavar="SECONDS",
        help="Timeout of each API request.",
    )(f)
    f = click.option("-n", "--namespace", metavar="NS", help="Namespace (default: the context's, else 'default').")(f)
    if repeat_context:
        f = click.option(
            "--context",
            metavar="NAME",
            multiple=True,
            help="kubeconfig context to use (default: current-context); repeat it to capture several clusters at "
            "once into one ClusterSnapshotList.",
        )(f)
    else:
        f = click.option("--context", metavar="NAME", help="kubeconfig context to use (default: current-context).")(f)
    f = click.option(
        "--kubeconfig",
        metavar="FILE",
        type=click.Path(dir_okay=False),
        help="kubeconfig file (default: $KUBECONFIG, then ~/.kube/config).",
    )(f)
    return f


def kube_opts(
    kubeconfig: str | None, context: str | None, namespace: str | None, request_timeout: float
) -> KubeOptions:
    """The connection flags as one value; flags that are never valid are refused here, before any I/O."""
    if not math.isfinite(request_timeout) or request_timeout <= 0:
        raise click.BadParameter("must be a finite number of seconds greater than 0", param_hint="--request-timeout")
    ctx = click.get_current_context(silent=True)
    extra: dict[str, Any] = dict(ctx.meta.get(META_KEY) or {}) if ctx is not None else {}
    for flag in ("cluster", "user", "token", "as_user"):
        if extra.get(flag) == "":
            raise click.BadParameter("must not be empty", param_hint=f"--{flag.replace('_user', '')}")
    return KubeOptions(
        kubeconfig=kubeconfig,
        context=context,
        namespace=namespace,
        request_timeout=request_timeout,
        cluster=extra.get("cluster"),
        user=extra.get("user"),
        token=extra.get("token"),
        as_user=extra.get("as_user"),
        as_groups=tuple(extra.get("as_group") or ()),
    )


format_option = click.option(
    "--format", "fmt", type=click.Choice(["yaml", "json"]), default="yaml", show_default=True, help="Output format."
)
