"""Every error the CLI reports, and the one place where errors become exit codes.

Exit codes (documented in ``--help`` and the README):

====  ===============================================================================
0     success; for ``diff``: no drift
1     ``diff``: drift found
2     invalid input: bad flags, unreadable/invalid snapshot, schema violations
3     not found: ConfigMap, kubeconfig context, or no node matches the selector
4     forbidden: the Kubernetes user lacks a permission (named in the message)
5     timed out waiting for the agent
6     the cluster could not be reached
7     the agent ran but failed (unschedulable, image pull, container exit, Job failed)
8     internal error (a bug: please report it)
130   interrupted (Ctrl-C / SIGTERM); everything created was cleaned up
====  ===============================================================================
"""

from __future__ import annotations

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

EXIT_CODES_HELP = """\b
Exit codes:
  0    success (diff: no drift)
  1    diff: drift found
  2    invalid input (flags, snapshot, schema)
  3    not found (ConfigMap, context, matching node)
  4    forbidden (missing Kubernetes permission)
  5    timed out waiting for the agent
  6    cluster unreachable
  7    agent failed (unschedulable, image pull, exit code)
  8    internal error
  130  interrupted (cleanup still ran)"""


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


class AgentFailed(AicrError):
    exit_code = AGENT_FAILED


class Interrupted(AicrError):
    exit_code = INTERRUPTED


class InternalError(AicrError):
    exit_code = INTERNAL


class SnapshotMismatch(AgentFailed):
    """The snapshot read back is not the one this run's agent wrote (changed, re-created, wrong run or node);
    exit code 7, like any other agent failure."""
