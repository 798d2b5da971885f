"""The root ``kubectl aicr`` click group and its table of sub-commands, each imported only when it runs (or its
``--help`` is shown).

Here, not in :mod:`kubectl_aicr.cli`, so that shell completion (:mod:`kubectl_aicr.completion`) can build on the
group without importing the entry point that imports it: the layering is ``cli`` -> ``completion`` -> ``group``.
"""

from __future__ import annotations

import importlib
from typing import Any

import click

from kubectl_aicr import __version__
from kubectl_aicr.errors import EXIT_CODES_HELP

PROG = "kubectl aicr"
#: click's shell-completion switch; explicit, since click would derive "_KUBECTL AICR_COMPLETE" from PROG.
COMPLETE_VAR = "_KUBECTL_AICR_COMPLETE"

#: name -> (module, short help). Modules are imported only when the command runs (or its --help is shown).
COMMANDS: dict[str, tuple[str, str]] = {
    "snapshot": (
        "kubectl_aicr.commands.snapshot",
        "Capture a node's configuration (through an agent Job, or --local).",
    ),
    "diff": ("kubectl_aicr.commands.diff", "Compare two snapshots and report drift (exit 1 on drift)."),
    "check": ("kubectl_aicr.commands.check", "Check snapshots against a policy, with waivers (exit 1 on violations)."),
    "policy": ("kubectl_aicr.commands.policy", "Write a starting policy from a snapshot (init); print its schema."),
    "validate": ("kubectl_aicr.commands.validate", "Check a snapshot against the JSON Schema."),
    "schema": ("kubectl_aicr.commands.schema", "Print the Snapshot JSON Schema."),
    "version": ("kubectl_aicr.commands.version", "Print the plugin version."),
    "completion": (
        "kubectl_aicr.commands.completion",
        "Shell completion: bash, zsh, fish scripts; kubectl plugin completion.",
    ),
    "agent": ("kubectl_aicr.commands.agent", "Collect inside the agent pod and store the snapshot (used by the Job)."),
}
HIDDEN = {"agent"}


class OutputClosed(Exception):
    """Standard output (or a pipe given to -o) was closed by its reader: raised instead of ``BrokenPipeError`` so
    that click, which turns every EPIPE into exit 1 (``diff``'s "drift"), lets it through to
    :func:`kubectl_aicr.cli.main`."""


class LazyGroup(click.Group):
    """The root group: lists and describes sub-commands from :data:`COMMANDS` and imports one only to run it."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except BrokenPipeError:
            raise OutputClosed from None

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        module = importlib.import_module(COMMANDS[name][0])
        cmd: click.Command = module.command
        cmd.hidden = name in HIDDEN
        return cmd

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # Short help from the table above, so listing commands imports none of them.
        rows = [(n, h) for n, (_, h) in sorted(COMMANDS.items()) if n not in HIDDEN]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(
    cls=LazyGroup,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    epilog=EXIT_CODES_HELP,
)
@click.version_option(__version__, "--version", prog_name="kubectl-aicr", message="%(prog)s %(version)s")
@click.option("--debug", is_flag=True, envvar="AICR_DEBUG", help="Show tracebacks for unexpected errors.")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """Snapshot the configuration of GPU-accelerated Kubernetes nodes and detect drift.

    \b
    kubectl aicr snapshot -o snapshot.yaml          # run the agent on a GPU node
    kubectl aicr snapshot --local                   # collect on this machine, no cluster
    kubectl aicr diff baseline.yaml snapshot.yaml   # exit 1 when something drifted
    kubectl aicr validate cm://gpu-ops/baseline
    """
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug
