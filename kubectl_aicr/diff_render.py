"""Former home of the diff renderers, now :mod:`kubectl_aicr.diff.render`: kept only until its last importer
(``kubectl_aicr.reports.markdown``) imports from there. New code imports :mod:`kubectl_aicr.diff.render`."""

from __future__ import annotations

from kubectl_aicr.diff.render import md_code

__all__ = ["md_code"]
