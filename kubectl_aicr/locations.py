"""Where a snapshot is read from or written to: ``-`` (stdin/stdout), a file path, or ``cm://NAMESPACE/NAME``.

Pure: parsing a location does no I/O, so a bad one fails before anything is read, written or connected.
:mod:`kubectl_aicr.snapshot_io` reads and writes them; :mod:`kubectl_aicr.cmstore` holds the ConfigMap I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Union

from kubectl_aicr.errors import InvalidInput

#: Largest snapshot document read from a file or standard input: a SnapshotList of 1,000 agent snapshots of 8-GPU
#: nodes is 70-90 MB, of 5,000 about 350-450 MB. (A ConfigMap's compressed data has its own, lower bound: cmstore.)
MAX_DOCUMENT_BYTES = 1024 * 1024 * 1024


@dataclass(frozen=True)
class Stdio:
    """``-``: standard input when reading, standard output when writing."""

    def __str__(self) -> str:
        return "-"


@dataclass(frozen=True)
class FilePath:
    path: str

    def __str__(self) -> str:
        return self.path


@dataclass(frozen=True)
class ConfigMapRef:
    namespace: str
    name: str

    def __str__(self) -> str:
        return f"cm://{self.namespace}/{self.name}"


Location = Union[Stdio, FilePath, ConfigMapRef]
CM_SCHEME = "cm://"


def _dns_label_ok(s: str, max_len: int) -> bool:
    return len(s) <= max_len and re.fullmatch(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?", s) is not None


def parse_location(text: str) -> Location:
    """``-`` | ``cm://namespace/name`` | a file path."""
    text = text.strip()
    if text in ("", "-"):
        return Stdio()
    if text.startswith(CM_SCHEME):
        rest = text[len(CM_SCHEME) :]
        ns, sep, name = rest.partition("/")
        if not sep or not ns or not name:
            raise InvalidInput(f"{text!r}: a ConfigMap location is cm://NAMESPACE/NAME")
        if not _dns_label_ok(ns, 63) or "." in ns:
            raise InvalidInput(f"{text!r}: {ns!r} is not a valid namespace name (lowercase letters, digits and '-')")
        if not _dns_label_ok(name, 253):
            raise InvalidInput(
                f"{text!r}: {name!r} is not a valid ConfigMap name (lowercase letters, digits, '-', '.')"
            )
        return ConfigMapRef(ns, name)
    if "://" in text:
        raise InvalidInput(f"{text!r}: unsupported location; use a file path, '-' or cm://NAMESPACE/NAME")
    return FilePath(text)
