"""The snapshots a reading command is given (``diff``, ``check``, ``policy init``): files, ``-``, ``cm://``.

Every location is parsed before any I/O (a bad one fails first), then each is read and schema-validated. Any
failure is exit 2, as diff(1) does, so that 0 and 1 always mean "compared" / "checked": the error is raised again as
:class:`~kubectl_aicr.errors.InvalidInput` with the same message and hint (``from`` the original). The kubernetes
client is imported only when a ConfigMap is read.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

from kubectl_aicr import snapshot_io
from kubectl_aicr.errors import AicrError, InvalidInput
from kubectl_aicr.kube import KubeOptions, connector

if TYPE_CHECKING:
    from collector.model import Document


def load_inputs(sources: Sequence[str], kube: KubeOptions) -> list[tuple[str, Document]]:
    """``[(location, document)]`` in the order given; ``kube``: the command's connection options."""
    try:
        locs = [snapshot_io.parse_location(s) for s in sources]
        if sum(isinstance(loc, snapshot_io.Stdio) for loc in locs) > 1:
            raise InvalidInput("only one input may be '-' (standard input)")
        connect = connector(kube)  # connects only when a ConfigMap is read, and once for all of them
        return [(str(loc), snapshot_io.load(loc, connect=connect)) for loc in locs]
    except AicrError as err:
        # Exit 2 for any error, e.g. ConfigMap not found (3), forbidden (4), cluster unreachable (6); and one line: the
        # first schema error is in the message, the hint says how to see them all (the details are left out).
        raise InvalidInput.wrapping(err) from err
