"""Version ranges in natural version order: ``570.124.06`` is newer than ``570.86.15`` (numbers compare as
numbers, not as text), ``v1.33.5-eks-3025e55`` reads as ``1.33.5``.

A range is one or more comparisons joined by commas, all of which must hold: ``>= 570.86, < 580``. Operators:
``>=``, ``>``, ``<=``, ``<``, ``==`` (also a bare version), ``!=``. A version in a range is dot-separated numbers
with an optional leading ``v`` (``570.86``, ``v1.30``); missing trailing parts are zeros (``570.86`` == ``570.86.0``).
A reading is compared by its leading version (``v1.33.5-eks-3025e55`` -> ``1.33.5``; a reading without one
violates every range).
"""

from __future__ import annotations

import operator
import re
from dataclasses import dataclass
from typing import Callable, Optional

Version = tuple[int, ...]

_RANGE_VERSION = re.compile(r"v?(\d+(?:\.\d+)*)\Z")
_READING_VERSION = re.compile(r"\s*v?(\d+(?:\.\d+)*)")
_COMPARISON = re.compile(r"\s*(>=|<=|==|!=|>|<|=)?\s*(\S+)\s*\Z")
_OPS: dict[str, Callable[[Version, Version], bool]] = {
    ">=": operator.ge,
    ">": operator.gt,
    "<=": operator.le,
    "<": operator.lt,
    "==": operator.eq,
    "!=": operator.ne,
}


def _trim(v: tuple[int, ...]) -> Version:
    """Trailing zeros dropped, so that ``570.86`` and ``570.86.0`` compare equal."""
    n = len(v)
    while n > 1 and v[n - 1] == 0:
        n -= 1
    return v[:n]


def parse_version(text: str) -> Optional[Version]:
    """The version a reading starts with (``"570.86.15"`` -> ``(570, 86, 15)``), or ``None``."""
    m = _READING_VERSION.match(text)
    if m is None:
        return None
    return _trim(tuple(int(p) for p in m.group(1).split(".")))


@dataclass(frozen=True)
class Comparison:
    op: str
    version: Version
    text: str

    def holds(self, v: Version) -> bool:
        return _OPS[self.op](v, self.version)


@dataclass(frozen=True)
class VersionRange:
    text: str
    comparisons: tuple[Comparison, ...]

    def contains(self, reading: str) -> Optional[bool]:
        """True/False; ``None`` when the reading holds no version at all."""
        v = parse_version(reading)
        if v is None:
            return None
        return all(c.holds(v) for c in self.comparisons)


def parse_range(text: str) -> VersionRange:
    """Raises ``ValueError`` (with the part that is wrong) for anything that is not a range."""
    parts = [p for p in text.split(",")]
    if not text.strip() or any(not p.strip() for p in parts):
        raise ValueError("empty comparison")
    comps: list[Comparison] = []
    for part in parts:
        m = _COMPARISON.match(part)
        if m is None:
            raise ValueError(f"{part.strip()!r} is not OP VERSION")
        op, ver = m.group(1) or "==", m.group(2)
        vm = _RANGE_VERSION.match(ver)
        if vm is None:
            raise ValueError(f"{ver!r} is not a version (numbers separated by dots, e.g. 570.86)")
        comps.append(
            Comparison("==" if op == "=" else op, _trim(tuple(int(p) for p in vm.group(1).split("."))), part.strip())
        )
    return VersionRange(text.strip(), tuple(comps))
