"""Former home of the diff renderers, now :mod:`kubectl_aicr.diff.render` (every public name is re-exported here).

Kept only until its last importers (``kubectl_aicr.reports.markdown``, ``bench/bench_diff.py``) import from there;
new code imports :mod:`kubectl_aicr.diff.render`.
"""

from __future__ import annotations

from kubectl_aicr.diff.render import *  # noqa: F403
