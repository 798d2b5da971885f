"""Click options shared by several commands (kubectl's connection flags, output format)."""

from __future__ import annotations

from typing import Any, Callable

import click

from kubectl_aicr.kube import KubeOptions

F = Callable[..., Any]


def kube_options(f: F) -> F:
    """``--kubeconfig``, ``--context``, ``-n/--namespace``, ``--request-timeout`` - the kubectl flags a plugin must parse itself."""
    f = click.option("--request-timeout", type=float, default=30.0, show_default=True, metavar="SECONDS",
                     help="Timeout of each API request.")(f)
    f = click.option("-n", "--namespace", metavar="NS", help="Namespace (default: the context's, else 'default').")(f)
    f = click.option("--context", metavar="NAME", help="kubeconfig context to use (default: current-context).")(f)
    f = click.option("--kubeconfig", metavar="FILE", type=click.Path(dir_okay=False),
                     help="kubeconfig file (default: $KUBECONFIG, then ~/.kube/config).")(f)
    return f


def kube_opts(kubeconfig: str | None, context: str | None, namespace: str | None, request_timeout: float) -> KubeOptions:
    if request_timeout <= 0:
        raise click.BadParameter("must be greater than 0", param_hint="--request-timeout")
    return KubeOptions(kubeconfig=kubeconfig, context=context, namespace=namespace, request_timeout=request_timeout)


format_option = click.option(
    "--format", "fmt", type=click.Choice(["yaml", "json"]), default="yaml", show_default=True, help="Output format."
)
