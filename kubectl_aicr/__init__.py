"""kubectl-aicr: snapshot the configuration of GPU-accelerated Kubernetes nodes and detect drift."""

import sys

# Written so that any Python 3 can parse it: this check must run before click or the kubernetes client load.
if sys.version_info < (3, 10):  # pragma: no cover - exercised by the zipapp test under old interpreters
    sys.stderr.write(
        "kubectl-aicr needs Python >= 3.10, but '%s' is %d.%d. Put a newer python3 first on PATH "
        "(macOS: brew install python).\n" % (sys.executable, sys.version_info[0], sys.version_info[1])
    )
    sys.exit(2)

__version__ = "0.1.0"
