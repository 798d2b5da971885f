"""Every error the CLI reports, and the one place where errors become exit codes.

Exit codes (documented in ``--help`` and the README):

====  ===============================================================================
0     success; for ``diff``: no drift; for ``check``: compliant
1     ``diff``: drift found; ``check``: a policy rule is violated
2     invalid input: bad flags, unreadable/invalid snapshot, schema violations
3     not found: ConfigMap, kubeconfig context, or no node matches the selector
4     forbidden: the Kubernetes user lacks a permission (named in the message)
5     timed out waiting for the agent
6     the cluster could not be reached
7     the agent ran but failed (unschedulable, image pull, container exit, Job failed)
8     internal error (a bug: please report it)
130   interrupted (Ctrl-C / SIGTERM); everything created was cleaned up
141   standard output (or the pipe given to ``-o``) was closed by its reader, e.g. ``| head``; as a shell reports
      a process stopped by SIGPIPE (128 + 13). Nothing is printed.
====  ===============================================================================
"""

from __future__ import annotations

import re

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

EXIT_CODES_HELP = """\b
Exit codes:
  0    success (diff: no drift; check: compliant)
  1    diff: drift found; check: policy violated
  2    invalid input (flags, snapshot, schema)
  3    not found (ConfigMap, context, matching node)
  4    forbidden (missing Kubernetes permission)
  5    timed out waiting for the agent
  6    cluster unreachable
  7    agent failed (unschedulable, image pull, exit code)
  8    internal error
  130  interrupted (cleanup still ran)
  141  output closed by its reader (e.g. | head), as SIGPIPE"""


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


class Interrupted(AicrError):
    exit_code = INTERRUPTED


class InternalError(AicrError):
    exit_code = INTERNAL


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
