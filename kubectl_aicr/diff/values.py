"""When two readings are the same value: one canonical text per reading (:func:`canonical`), compared exactly.

Snapshots reach us through several writers: the original Go tool writes most numbers as strings (``"60"``), ours
keeps real types (``60``), the original's JSON read-back turns every int into a float (``60.0``) and a YAML ``null``
into the string ``"<nil>"``. Values are therefore compared through one canonical text, and only where that is
unambiguous:

* ``None`` and the string ``"<nil>"`` -> ``<nil>``;
* booleans -> ``true`` / ``false``; the strings ``"true"`` / ``"false"`` (lower case, exactly) are the same value;
* integers -> their decimal text; a float with an integral value (below 2**53) -> the same text as that integer,
  any other float -> its shortest round-trip text (``repr``), so ``12.5`` equals ``"12.5"``;
* every other string is compared **exactly**.

So ``1``, ``1.0`` and ``"1"`` are the same value; ``"08"`` is not ``8`` (a leading zero is not canonical decimal:
it may be a version part, a code or octal), ``"1.0"`` is not ``1`` (quoted, ``1.0`` reads like a version), ``"12.10"``
is not ``"12.1"``, ``"True"`` is not ``true``, ``1`` is not ``true``, ``""`` is not ``null``.
"""

from __future__ import annotations

import math

from collector.model import Scalar

#: Canonical text of a null value (what the original tool writes for a nil reading).
NIL = "<nil>"

_MAX_EXACT_FLOAT_INT = 2**53


def canonical(value: Scalar) -> str:
    """The text two readings are compared by (see the module docstring for the rule)."""
    if value is None:
        return NIL
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isfinite(value) and value.is_integer() and abs(value) < _MAX_EXACT_FLOAT_INT:
            return str(int(value))
        return repr(value)
    return str(value)


def same_value(base: Scalar, current: Scalar) -> bool:
    """True when ``base`` and ``current`` are the same reading after normalisation."""
    if type(base) is type(current) and base == current:  # the common case; also keeps True apart from 1
        return True
    return canonical(base) == canonical(current)
