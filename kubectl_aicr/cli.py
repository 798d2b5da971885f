"""The ``kubectl aicr`` command line: a click group whose sub-commands are imported only when used.

This is also the single place where errors become exit codes (see :mod:`kubectl_aicr.errors`).
"""

from __future__ import annotations

import importlib
import os
import signal
import sys
import threading
from typing import Any, Sequence

import click

from kubectl_aicr import __version__
from kubectl_aicr.errors import EXIT_CODES_HELP, INTERNAL, INTERRUPTED, AicrError

PROG = "kubectl aicr"
#: click's shell-completion switch; explicit, since click would derive "_KUBECTL AICR_COMPLETE" from PROG.
COMPLETE_VAR = "_KUBECTL_AICR_COMPLETE"

#: name -> (module, short help). Modules are imported only when the command runs (or its --help is shown).
COMMANDS: dict[str, tuple[str, str]] = {
    "snapshot": ("kubectl_aicr.commands.snapshot", "Capture a node's configuration (through an agent Job, or --local)."),
    "diff": ("kubectl_aicr.commands.diff", "Compare two snapshots and report drift (exit 1 on drift)."),
    "validate": ("kubectl_aicr.commands.validate", "Check a snapshot against the JSON Schema."),
    "schema": ("kubectl_aicr.commands.schema", "Print the Snapshot JSON Schema."),
    "version": ("kubectl_aicr.commands.version", "Print the plugin version."),
    "completion": ("kubectl_aicr.commands.completion", "Shell completion: bash, zsh, fish scripts; kubectl plugin completion."),
    "agent": ("kubectl_aicr.commands.agent", "Collect inside the agent pod and store the snapshot (used by the Job)."),
}
HIDDEN = {"agent"}


class LazyGroup(click.Group):
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


def _print_error(err: AicrError) -> None:
    click.echo(f"error: {err.message}", err=True)
    for line in err.details:
        click.echo(f"  {line}", err=True)
    if err.hint:
        click.echo(f"hint: {err.hint}", err=True)


def _sigterm_as_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    """Console-script entry point; returns (and exits with) the documented exit code."""
    if threading.current_thread() is threading.main_thread():
        # SIGTERM (e.g. a CI job cancelled) cleans up like Ctrl-C.
        signal.signal(signal.SIGTERM, _sigterm_as_interrupt)
    debug = os.environ.get("AICR_DEBUG", "") not in ("", "0", "false") or "--debug" in (argv or sys.argv[1:])
    code = 0
    if os.environ.get(COMPLETE_VAR):  # a completion request: also answer kubectl's plugin protocol (the shim)
        import kubectl_aicr.completion  # noqa: F401 - registers the "kubectl" completion class
    try:
        result = cli.main(args=list(argv) if argv is not None else None, prog_name=PROG, standalone_mode=False,
                          complete_var=COMPLETE_VAR)
        code = result if isinstance(result, int) else 0
    except AicrError as err:
        _print_error(err)
        code = err.exit_code
    except click.exceptions.Abort:
        click.echo("interrupted", err=True)
        code = INTERRUPTED
    except click.ClickException as err:
        err.show()
        code = err.exit_code
    except click.exceptions.Exit as err:
        code = err.exit_code
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        code = INTERRUPTED
    except BrokenPipeError:
        # stdout closed early (e.g. piped into 'head'): not an error worth a traceback.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        code = 0
    except Exception as err:  # a bug: one line, the traceback with --debug
        if debug:
            raise
        click.echo(f"internal error: {type(err).__name__}: {err} (rerun with --debug for the traceback; please report it)", err=True)
        code = INTERNAL
    sys.exit(code)


if __name__ == "__main__":  # pragma: no cover
    main()
