"""How long tests wait for the cluster: every wait is derived from one constant, so a slow machine is slow, not red.

    from tests.controlplane.patience import patience
    wait_for(..., timeout=patience(20))      # 20 s on a quiet machine, scaled by AICR_TEST_PATIENCE

``PATIENCE`` (env ``AICR_TEST_PATIENCE``, default 4) multiplies the time a step takes on a quiet 2-core machine.
A wait that expires is a failure, so the factor is generous: it costs nothing when things work, and only delays
the report of a real hang. Tests never assert that something was *fast* (speed goals live in ``bench/``); where
a test must show that something did *not* wait (fail-fast paths), it gives the CLI a timeout far above the wait
and asserts on the reason reported, which a timeout would not produce.
"""

from __future__ import annotations

import os

PATIENCE = float(os.environ.get("AICR_TEST_PATIENCE", "4"))
"""Multiplier over the quiet-machine duration of a step; raise it on a very slow machine."""

LONG_CLI_TIMEOUT = "15m"
"""``--timeout`` for runs that must end on their own (fail fast, or finish): far above any ``patience()`` wait."""


def patience(quiet_seconds: float) -> float:
    """Seconds to wait for a step that takes about ``quiet_seconds`` / a few on a quiet machine."""
    return quiet_seconds * PATIENCE
