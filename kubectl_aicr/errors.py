"""Every error the CLI reports, and the one table of exit codes.

:data:`EXIT_CODES` is that table: each row is a code, the name of its constant here, what it means (the README's
"Exit codes" table is its rendering, :func:`exit_codes_markdown`; a test keeps the two equal) and the short line
``--help`` shows (:data:`EXIT_CODES_HELP`). Every :class:`AicrError` subclass names its code as ``exit_code``;
:func:`kubectl_aicr.cli.main` is the one place where errors become exit codes, and where a command's ``int``
return value becomes the process's (``diff`` returns :data:`DRIFT`).

An error that a command wants reported under another code is wrapped, never changed: ``raise
InvalidInput.wrapping(err) from err`` (``diff`` exits 2 on every error, as diff(1) does).

The table, as the README shows it:

"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable

OK = 0
DRIFT = 1
INVALID_INPUT = 2
NOT_FOUND = 3
FORBIDDEN = 4
TIMEOUT = 5
UNAVAILABLE = 6
AGENT_FAILED = 7
INTERNAL = 8
INTERRUPTED = 130
BROKEN_PIPE = 141


@dataclass(frozen=True)
class ExitCode:
    """One row of the exit-code table: ``meaning`` is the README's wording (Markdown), ``short`` the ``--help`` line."""

    code: int
    name: str
    meaning: str
    short: str


#: The exit codes, in order. ``name`` is the constant above holding ``code`` (a test checks each pair).
EXIT_CODES: tuple[ExitCode, ...] = (
    ExitCode(OK, "OK", "success; `diff`: no drift; `check`: compliant", "success (diff: no drift; check: compliant)"),
    ExitCode(
        DRIFT,
        "DRIFT",
        "`diff`: drift found; `check`: a policy rule is violated",
        "diff: drift found; check: policy violated",
    ),
    ExitCode(
        INVALID_INPUT,
        "INVALID_INPUT",
        "invalid input: flags, unreadable or schema-invalid snapshot, standard input/output closed, no space left "
        "for the output, an `-o` path that is no place for a snapshot; for `diff` every error",
        "invalid input (flags, snapshot, schema)",
    ),
    ExitCode(
        NOT_FOUND,
        "NOT_FOUND",
        "not found: ConfigMap, kubeconfig context, no node matches the selector",
        "not found (ConfigMap, context, matching node)",
    ),
    ExitCode(
        FORBIDDEN,
        "FORBIDDEN",
        "forbidden: a Kubernetes permission is missing (the message names it)",
        "forbidden (missing Kubernetes permission)",
    ),
    ExitCode(TIMEOUT, "TIMEOUT", "timed out waiting for the agent", "timed out waiting for the agent"),
    ExitCode(UNAVAILABLE, "UNAVAILABLE", "the cluster could not be reached", "cluster unreachable"),
    ExitCode(
        AGENT_FAILED,
        "AGENT_FAILED",
        "the agent failed: unschedulable, image pull, container exit code, Job failed; `--all-nodes`: some node failed",
        "agent failed (unschedulable, image pull, exit code)",
    ),
    ExitCode(INTERNAL, "INTERNAL", "internal error (a bug; rerun with `--debug` for the traceback)", "internal error"),
    ExitCode(
        INTERRUPTED,
        "INTERRUPTED",
        "interrupted (Ctrl-C or SIGTERM); cleanup still ran",
        "interrupted (cleanup still ran)",
    ),
    ExitCode(
        BROKEN_PIPE,
        "BROKEN_PIPE",
        "the output was closed by its reader (e.g. `| head`): 128 + SIGPIPE, as a shell reports it; nothing is printed",
        "output closed by its reader (e.g. | head), as SIGPIPE",
    ),
)


def exit_codes_help(rows: Iterable[ExitCode] = EXIT_CODES, title: str = "Exit codes:") -> str:
    """The rows as a click epilog paragraph (``\\b``: kept as written), one ``  CODE MEANING`` line each."""
    return "\n".join(["\b", title, *(f"  {row.code:<5}{row.short}" for row in rows)])


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|")


def exit_codes_markdown(rows: Iterable[ExitCode] = EXIT_CODES) -> str:
    """The rows as the README's Markdown table (``|`` in a meaning escaped)."""
    lines = ["| code | meaning |", "|---|---|"]
    lines += [f"| {row.code} | {_md_cell(row.meaning)} |" for row in rows]
    return "\n".join(lines)


#: The exit codes in ``--help`` (the root command's and ``snapshot``'s epilog).
EXIT_CODES_HELP = exit_codes_help()
__doc__ = (__doc__ or "") + exit_codes_markdown()


class AicrError(Exception):
    """Base class: ``str(err)`` is the one line shown to the user; ``hint`` says what to do next."""

    exit_code = INTERNAL

    def __init__(self, message: str, *, hint: str | None = None, details: list[str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.details = details or []


class InvalidInput(AicrError):
    exit_code = INVALID_INPUT

    @classmethod
    def wrapping(cls, err: AicrError) -> InvalidInput:
        """``err``'s message and hint as invalid input (exit 2), without its details; raise it ``from err``."""
        return cls(err.message, hint=err.hint)


class SnapshotInvalid(InvalidInput):
    """A document failed the Snapshot JSON Schema; ``details`` lists every error with its JSON path."""


class NotFound(AicrError):
    exit_code = NOT_FOUND


class Forbidden(AicrError):
    exit_code = FORBIDDEN


class Timeout(AicrError):
    exit_code = TIMEOUT


class Unavailable(AicrError):
    exit_code = UNAVAILABLE


class Conflict(AicrError):
    """The API server refused a write because the object exists or changed since it was read (409, 412). Callers
    that expect one (create-or-replace, delete-if-unchanged) catch it; one that reaches the user was not expected
    here, so it exits as an internal error."""


class AgentFailed(AicrError):
    exit_code = AGENT_FAILED


#: Characters that steer a terminal rather than print: C0 controls but tab, DEL, C1 controls (CSI, OSC, NEL...), the
#: bidirectional embeddings, overrides and isolates ("Trojan Source"), and the Unicode line/paragraph separators.
_UNSAFE = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def _escape(m: "re.Match[str]") -> str:
    code = ord(m.group(0))
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def _json_escape(m: "re.Match[str]") -> str:
    return f"\\u{ord(m.group(0)):04x}"


def has_unsafe(text: str) -> bool:
    """Whether ``text`` holds a character :func:`safe_text` would escape."""
    return _UNSAFE.search(text) is not None


def safe_text(text: str, *, json_style: bool = False) -> str:
    """``text`` with every character that could move the cursor, recolour, retitle or reorder a terminal (see
    :data:`_UNSAFE`) written as a visible escape (``\\x1b``, ``\\u202e``; ``\\u001b`` with ``json_style``, for text
    that is already a JSON string): for values from a snapshot or another input that reach a terminal in text
    output or an error message."""
    if not _UNSAFE.search(text):
        return text
    return _UNSAFE.sub(_json_escape if json_style else _escape, text)


class SnapshotMismatch(AgentFailed):
    """The snapshot read back is not the one this run's agent wrote (changed, re-created, wrong run or node);
    exit code 7, like any other agent failure."""
