"""Reports CI systems render, for ``check`` and ``diff``: JUnit XML (:mod:`.junit`), size-capped markdown
(:mod:`.markdown`), and the ``check`` text/JSON forms (:mod:`.check_report`); :mod:`.diff_report` adapts
``diff`` results to JUnit and capped markdown.
"""

from __future__ import annotations

#: GitHub's limit for one step's summary ($GITHUB_STEP_SUMMARY): 1 MiB.
STEP_SUMMARY_BYTES = 1024 * 1024
#: GitHub's limit for an issue or pull-request comment: 65,536 characters (we count bytes, which is stricter).
PR_COMMENT_BYTES = 65536
