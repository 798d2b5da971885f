"""Running host commands: argument lists only (never a shell), one bounded timeout per call, typed failures.

Collectors take a :class:`CommandRunner` so that tests can hand them a fake that replays captured output.
The real one is :class:`SubprocessRunner`.

A runner either returns a :class:`CommandResult` (whatever the exit status) or raises one of

* :class:`CommandNotFound`: the executable does not exist (or is not on ``PATH``),
* :class:`CommandTimeout`: the command ran past its timeout and its whole process group was killed,
* :class:`CommandFailed`: it could not be started for another reason (permission denied, exec format error...).

All three derive from :class:`CommandError`, so a collector can catch one type and turn it into a subtype status.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass
from typing import Mapping, Protocol, Sequence

__all__ = [
    "CommandError",
    "CommandFailed",
    "CommandNotFound",
    "CommandResult",
    "CommandRunner",
    "CommandTimeout",
    "SubprocessRunner",
    "describe_failure",
]

#: Environment handed to every child: enough to find binaries and get stable, untranslated output (plus
#: SYSTEMD_IGNORE_CHROOT, see SubprocessRunner).
#: Nothing from the caller's environment (proxies, tokens, KUBECONFIG...) reaches a child.
_CHILD_ENV_KEEP = ("PATH",)
_DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass(frozen=True)
class CommandResult:
    """What a command printed and how it ended. ``stdout``/``stderr`` are decoded as UTF-8 (invalid bytes replaced)."""

    returncode: int
    stdout: str
    stderr: str
    duration: float  # seconds


class CommandError(Exception):
    """Base class: the command produced no :class:`CommandResult`."""

    def __init__(self, argv: Sequence[str], message: str) -> None:
        super().__init__(message)
        self.argv = tuple(argv)
        self.message = message


class CommandNotFound(CommandError):
    """The executable is missing."""


class CommandTimeout(CommandError):
    """The command did not finish within its timeout; it was killed."""

    def __init__(self, argv: Sequence[str], timeout: float, stdout: str = "", stderr: str = "") -> None:
        super().__init__(argv, f"{argv[0]} timed out after {timeout:g}s")
        self.timeout = timeout
        self.stdout = stdout
        self.stderr = stderr


class CommandFailed(CommandError):
    """The command could not be started (permission denied, bad executable...)."""


class CommandRunner(Protocol):
    """Runs ``argv`` (no shell) and returns its result within ``timeout`` seconds, or raises a :class:`CommandError`."""

    def __call__(self, argv: Sequence[str], timeout: float) -> CommandResult:  # pragma: no cover - protocol
        ...


def _decode(data: bytes | None) -> str:
    return (data or b"").decode("utf-8", errors="replace")


class SubprocessRunner:
    """The real runner: ``subprocess.Popen`` in a new session, killed as a process group on timeout."""

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        if env is None:
            env = {k: os.environ[k] for k in _CHILD_ENV_KEEP if k in os.environ}
            env.setdefault("PATH", _DEFAULT_PATH)
            env["LC_ALL"] = "C"
            # In the agent container systemctl sees a root that is not PID 1's, decides it runs in a chroot and
            # ignores 'show' (exit 0, no output): every unit would read as missing. The host's systemd is
            # reachable through the mounted /run/systemd; this tells systemctl to use it.
            env["SYSTEMD_IGNORE_CHROOT"] = "1"
        self._env = dict(env)

    def __call__(self, argv: Sequence[str], timeout: float) -> CommandResult:
        if not argv:
            raise ValueError("empty argv")
        args = [str(a) for a in argv]
        start = time.monotonic()
        try:
            proc = subprocess.Popen(  # noqa: S603 - argument list, no shell
                args,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=self._env,
                start_new_session=True,  # own process group, so a timeout kills grandchildren too
                close_fds=True,
            )
        except FileNotFoundError as e:
            raise CommandNotFound(args, f"{args[0]}: not found") from e
        except PermissionError as e:
            raise CommandFailed(args, f"{args[0]}: permission denied") from e
        except OSError as e:
            raise CommandFailed(args, f"{args[0]}: {e.strerror or e}") from e
        try:
            out, err = proc.communicate(timeout=max(timeout, 0.0))
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            try:
                out, err = proc.communicate(timeout=2.0)
            except subprocess.TimeoutExpired:  # pragma: no cover - a child that ignores SIGKILL (D state)
                out, err = b"", b""
            raise CommandTimeout(args, timeout, _decode(out), _decode(err)) from None
        except BaseException:
            _kill_group(proc)
            proc.wait()
            raise
        return CommandResult(proc.returncode, _decode(out), _decode(err), time.monotonic() - start)


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.kill()
    except ProcessLookupError:  # pragma: no cover
        pass


def describe_failure(result: CommandResult, limit: int = 400) -> str:
    """A one-line reason for a non-zero exit: the exit code plus stderr (or stdout when stderr is empty).

    nvidia-smi prints its "couldn't communicate with the NVIDIA driver" message on *stdout*, hence the fallback.
    """
    text = (result.stderr.strip() or result.stdout.strip()).replace("\r", "")
    text = " ".join(line.strip() for line in text.splitlines() if line.strip())
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return f"exit status {result.returncode}" + (f": {text}" if text else "")
