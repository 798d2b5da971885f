"""Starting the CLI (or any child) in tests as a person at a terminal would.

A test run started in the background by a non-interactive shell (``cmd &``, as some CI runners do) inherits
SIGINT *ignored*, and a child started with SIGINT ignored rightly keeps ignoring it (POSIX; Python then installs no
KeyboardInterrupt handler, and the CLI honours it too). Tests that press Ctrl-C must start their child with the
terminal's defaults: ``subprocess.run(..., preexec_fn=terminal_signals)``.
"""

from __future__ import annotations

import signal


def terminal_signals() -> None:
    """``preexec_fn``: SIGINT and SIGTERM at their defaults in the child, whatever the test runner inherited."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
