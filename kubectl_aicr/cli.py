"""The ``kubectl aicr`` entry point (:func:`main`): runs the root group of :mod:`kubectl_aicr.group`, whose
sub-commands are imported only when used.

:func:`main` is the single place where errors become exit codes (the table is :data:`kubectl_aicr.errors.EXIT_CODES`):
an :class:`~kubectl_aicr.errors.AicrError` exits with its ``exit_code``, a command that returns an ``int`` (``diff``
returns :data:`~kubectl_aicr.errors.DRIFT`) exits with it, click's usage errors with 2, Ctrl-C and SIGTERM with 130,
a closed output with 141, anything else with 8.
"""

from __future__ import annotations

import os
import signal
import sys
import threading


def _interrupted_outside_main(signum: int, frame: object) -> None:
    """Ctrl-C while the CLI's modules load, or while the interpreter shuts down after :func:`main` (waiting for a
    collector thread): nothing is left to clean up, so the usual line and 130 at once, without a traceback."""
    try:
        os.write(2, b"interrupted\n")
    finally:
        os._exit(130)


#: Started with Ctrl-C ignored (``nohup cmd &``, a runner that ignores SIGINT): it stays ignored, as POSIX expects.
_SIGINT_IGNORED = signal.getsignal(signal.SIGINT) == signal.SIG_IGN
_PREVIOUS_SIGINT = None
if threading.current_thread() is threading.main_thread() and not _SIGINT_IGNORED:
    _PREVIOUS_SIGINT = signal.signal(signal.SIGINT, _interrupted_outside_main)  # put back at the end of this module

import errno  # noqa: E402 - the handler above must be in place while these load
from typing import Any, Sequence  # noqa: E402

import click  # noqa: E402

from kubectl_aicr.errors import BROKEN_PIPE, INTERNAL, INTERRUPTED, OK, AicrError, InvalidInput, safe_text  # noqa: E402
from kubectl_aicr.group import COMMANDS, COMPLETE_VAR, HIDDEN, PROG, LazyGroup, OutputClosed, cli  # noqa: E402

__all__ = ["COMMANDS", "COMPLETE_VAR", "HIDDEN", "PROG", "LazyGroup", "OutputClosed", "cli", "main"]


def _print_error(err: AicrError) -> None:
    """The error, its details and hint on stderr; input values they echo cannot steer the terminal (safe_text)."""
    try:
        click.echo(f"error: {safe_text(err.message)}", err=True)
        for line in err.details:
            click.echo(f"  {safe_text(line)}", err=True)
        if err.hint:
            click.echo(f"hint: {safe_text(err.hint)}", err=True)
    except OSError:  # stderr itself is gone: the exit code still tells
        pass


class _ClosedStdout:
    """Stands in for ``sys.stdout`` when file descriptor 1 was closed at start-up (``>&-``): writing to it is an
    error that says so, while commands that never write to standard output (``-o FILE``) run normally."""

    encoding = "utf-8"
    errors = "strict"

    def write(self, text: str) -> int:
        raise InvalidInput("standard output is closed; redirect it (> FILE) or write to a file with -o FILE")

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False


def _silence_stdout() -> None:
    """Point file descriptor 1 at /dev/null, so the interpreter's last flush of what is still buffered succeeds."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.close(devnull)
    except OSError:
        pass


#: errno values of a write that failed for lack of room: the environment, not a bug (exit 2, one line).
_NO_SPACE = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


def _sigterm_as_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    """Console-script entry point; returns (and exits with) the documented exit code."""
    if threading.current_thread() is threading.main_thread():
        # SIGTERM (e.g. a CI job cancelled) cleans up like Ctrl-C.
        signal.signal(signal.SIGTERM, _sigterm_as_interrupt)
    if sys.stdout is None:
        sys.stdout = _ClosedStdout()  # type: ignore[assignment,unused-ignore]
    debug = os.environ.get("AICR_DEBUG", "") not in ("", "0", "false") or "--debug" in (argv or sys.argv[1:])
    code = OK
    if os.environ.get(COMPLETE_VAR):  # a completion request: also answer kubectl's plugin protocol (the shim)
        import kubectl_aicr.completion  # noqa: F401 - registers the "kubectl" completion class
    try:
        result = cli.main(
            args=list(argv) if argv is not None else None,
            prog_name=PROG,
            standalone_mode=False,
            complete_var=COMPLETE_VAR,
        )
        code = result if isinstance(result, int) else OK  # a command may return its exit code (diff: DRIFT)
        sys.stdout.flush()  # here, where a failure is reported, not at interpreter exit
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
    except (OutputClosed, BrokenPipeError):
        # The reader went away (e.g. '| head'): silent, and the exit status a shell gives a process killed by SIGPIPE.
        _silence_stdout()
        code = BROKEN_PIPE
    except Exception as err:
        if isinstance(err, OSError) and err.errno in _NO_SPACE:  # e.g. '> /dev/full', a full disk behind stdout
            full = InvalidInput(f"cannot write the output: {err.strerror}", hint="free some space or write elsewhere")
            _print_error(full)
            _silence_stdout()
            code = full.exit_code
        elif debug:
            raise
        else:  # a bug: one line, the traceback with --debug
            click.echo(
                f"internal error: {type(err).__name__}: {err} (rerun with --debug for the traceback; please report it)",
                err=True,
            )
            code = INTERNAL
    if argv is None and threading.current_thread() is threading.main_thread() and not _SIGINT_IGNORED:
        signal.signal(signal.SIGINT, _interrupted_outside_main)  # Ctrl-C during interpreter shutdown: no traceback
    if argv is None and "kubernetes" in sys.modules:
        _exit_now(code)
    sys.exit(code)


def _exit_now(code: int) -> None:
    """End the process without tearing down the ~1,300 modules the kubernetes client loaded (0.1-0.5 s of interpreter
    shutdown measured by bench/bench_snapshot.py): the exit handlers still run (temporary files such as the
    kubeconfig's certificates are removed), output is flushed, and nothing is cut short, since this is done only
    when no other non-daemon thread is alive (otherwise the normal shutdown waits for it, as before)."""
    import atexit

    if any(t.is_alive() and not t.daemon for t in threading.enumerate() if t is not threading.main_thread()):
        return
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # closed by its reader, or by a command: the exit code already tells
            pass
    os._exit(code)


if _PREVIOUS_SIGINT is not None:  # the imports are done: Ctrl-C raises KeyboardInterrupt again, as main() expects
    signal.signal(signal.SIGINT, _PREVIOUS_SIGINT)

if __name__ == "__main__":  # pragma: no cover
    main()
