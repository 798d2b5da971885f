"""A yes/no JSON Schema check for the Draft 2020-12 keywords our shipped schemas use, and the format checks.

Why: importing jsonschema 4.17 costs more than the rest of ``validate FILE`` together (attrs, pyrsistent,
urllib.request and http.client, and, through ``jsonschema._format``, every optional format library installed).
Nearly every snapshot the CLI reads or writes is valid, and for a valid one jsonschema only ever says "no errors".
:func:`compile` turns a schema into one function that answers ``valid or not`` without importing jsonschema;
:mod:`kubectl_aicr.schema` asks it first and runs jsonschema only when the answer is "not valid", so every error
message still comes from jsonschema itself.

Contract (tested against jsonschema on every fixture and on generated documents, tests/unit/test_quickschema.py):
``compile(schema)(doc)`` is True exactly when ``list(Draft202012Validator(schema, format_checker=
format_checker()).iter_errors(doc)) == []``. Each keyword is checked as jsonschema 4.17 checks it (the same type
tests, ``re.search`` for ``pattern``, string equality for ``const``/``enum``). A schema with anything else (a keyword
not listed in :data:`_KEYWORDS`, a ``$ref`` that is not a local JSON pointer, a nested ``$id``, a non-string
``const``/``enum``, a ``format`` missing from :data:`FORMATS`) raises :class:`Unsupported` from :func:`compile`,
and the caller uses jsonschema for every document: the quick check is never a guess.

:data:`FORMATS` holds every ``format`` our shipped schemas declare (tests/unit/test_schema_formats.py walks them),
each giving the verdict of jsonschema's own ``FORMAT_CHECKER`` (tested value by value) without importing a format
library; :func:`format_checker` hands the same functions to jsonschema, so both paths agree and no other format
is paid for.
"""

from __future__ import annotations

import datetime
import numbers
import re
from typing import Any, Callable, Mapping

Check = Callable[[Any], bool]


class Unsupported(Exception):
    """The schema uses something :func:`compile` does not check exactly; validate with jsonschema instead."""


#: RFC 3339 ``date-time`` (section 5.6) in ASCII digits: full-date "T" full-time, no leap second. A final ``\n``
#: is allowed, as jsonschema's checker (``rfc3339_validator``, a ``$``-anchored pattern) allows it.
_DATE_TIME = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})T(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\.[0-9]+)?"
    r"(?:Z|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])\n?"
)


def _is_date_time(instance: str) -> bool:
    """RFC 3339 ``date-time``, upper-cased first (``t`` and ``z`` are accepted), with a real calendar day: exactly
    the verdict of jsonschema's own ``date-time`` check, without importing its helper library."""
    m = _DATE_TIME.fullmatch(instance.upper())
    if m is None:
        return False
    try:
        datetime.date(int(m[1]), int(m[2]), int(m[3]))  # year 0, month 13, 30 February... are refused
    except ValueError:
        return False
    return True


def _is_date(instance: str) -> bool:
    """An ASCII ``date`` that ``datetime.date.fromisoformat`` reads, as jsonschema checks it."""
    try:
        return bool(instance.isascii() and datetime.date.fromisoformat(instance))
    except ValueError:
        return False


#: Every ``format`` our shipped schemas declare, and its check (only strings are checked; other types pass).
FORMATS: Mapping[str, Callable[[str], bool]] = {"date": _is_date, "date-time": _is_date_time}


def declared_formats(schema: Any) -> set[str]:
    """Every ``format`` value anywhere in ``schema`` (a schema document, walked as plain JSON)."""
    found: set[str] = set()
    stack = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            fmt = node.get("format")
            if isinstance(fmt, str):
                found.add(fmt)
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return found


def format_checker(names: Any = None) -> Any:
    """A jsonschema ``FormatChecker`` holding only :data:`FORMATS` (or the ``names`` among them), nothing else.

    Raises :class:`LookupError` for a name not in :data:`FORMATS`: a schema declaring a format we do not check
    must fail loudly rather than pass unchecked."""
    from jsonschema import FormatChecker

    wanted = sorted(FORMATS if names is None else names)
    missing = [n for n in wanted if n not in FORMATS]
    if missing:
        raise LookupError(
            f"the schema declares format(s) {', '.join(missing)} that kubectl_aicr.quickschema does "
            "not check; add them to FORMATS"
        )
    checker = FormatChecker(formats=())
    for name in wanted:
        checker.checks(name)(_strings_only(FORMATS[name]))
    return checker


def _strings_only(check: Callable[[str], bool]) -> Check:
    """``check`` for strings; every other type passes (a format says nothing about numbers or objects)."""
    return lambda x: not isinstance(x, str) or check(x)


# ---------------------------------------------------------------------------------------------- the compiler


def _is_number(x: Any) -> bool:
    return not isinstance(x, bool) and isinstance(x, numbers.Number)


#: jsonschema 4.17's Draft 2020-12 type checker, name by name.
_TYPES: Mapping[str, Check] = {
    "array": lambda x: isinstance(x, list),
    "boolean": lambda x: isinstance(x, bool),
    "integer": lambda x: not isinstance(x, bool) and (isinstance(x, int) or isinstance(x, float) and x.is_integer()),
    "null": lambda x: x is None,
    "number": _is_number,
    "object": lambda x: isinstance(x, dict),
    "string": lambda x: isinstance(x, str),
}

#: Keywords that never make a document invalid (``$defs`` is reached through ``$ref``; then/else through ``if``).
_ANNOTATIONS = frozenset(
    {
        "$comment",
        "title",
        "description",
        "default",
        "examples",
        "deprecated",
        "readOnly",
        "writeOnly",
        "$defs",
        "then",
        "else",
    }
)
#: Keywords that are checked.
_KEYWORDS = frozenset(
    {
        "$ref",
        "type",
        "const",
        "enum",
        "pattern",
        "minLength",
        "minimum",
        "format",
        "properties",
        "required",
        "additionalProperties",
        "propertyNames",
        "items",
        "if",
        "anyOf",
    }
)


def _all(checks: list[Check]) -> Check:
    if not checks:
        return lambda x: True
    if len(checks) == 1:
        return checks[0]
    return lambda x: all(c(x) for c in checks)


def compile(schema: Any) -> Check:  # noqa: A001 - the module's one entry point, named for what it does
    """One function telling whether a document is valid under ``schema`` (see the module docstring).

    Raises :class:`Unsupported` when the schema uses anything this module does not check exactly."""
    if isinstance(schema, bool):
        return (lambda x: True) if schema else (lambda x: False)
    if not isinstance(schema, dict):
        raise Unsupported("the schema is not an object")
    if (
        schema.get("$schema", "https://json-schema.org/draft/2020-12/schema")
        != "https://json-schema.org/draft/2020-12/schema"
    ):
        raise Unsupported(f"$schema {schema.get('$schema')!r} is not Draft 2020-12")
    refs: dict[str, Check] = {}
    root = schema

    def ref(pointer: Any) -> Check:
        if not isinstance(pointer, str) or not pointer.startswith("#/"):
            raise Unsupported(f"$ref {pointer!r} is not a local JSON pointer")
        if pointer not in refs:
            target: Any = root
            for part in pointer[2:].split("/"):
                part = part.replace("~1", "/").replace("~0", "~")
                if not isinstance(target, dict) or part not in target or "%" in part:
                    raise Unsupported(f"$ref {pointer!r} does not name a subschema here")
                target = target[part]
            refs[pointer] = lambda x: False  # placeholder while compiling (recursive references)
            compiled = build(target)
            refs[pointer] = compiled
        return lambda x: refs[pointer](x)

    def build(s: Any, top: bool = False) -> Check:
        if s is True:
            return lambda x: True
        if s is False:
            return lambda x: False
        if not isinstance(s, dict):
            raise Unsupported(f"{s!r} is not a schema")
        unknown = set(s) - _KEYWORDS - _ANNOTATIONS - ({"$schema", "$id"} if top else set())
        if unknown:
            raise Unsupported(f"keyword(s) {', '.join(sorted(unknown))}")
        checks: list[Check] = []
        if "$ref" in s:
            checks.append(ref(s["$ref"]))
        if "type" in s:
            names = s["type"] if isinstance(s["type"], list) else [s["type"]]
            if not all(isinstance(n, str) and n in _TYPES for n in names):
                raise Unsupported(f"type {s['type']!r}")
            tests = [_TYPES[n] for n in names]
            checks.append(tests[0] if len(tests) == 1 else (lambda x: any(t(x) for t in tests)))
        if "const" in s:
            const = s["const"]
            if not isinstance(const, str):
                raise Unsupported("a const that is not a string")
            checks.append(lambda x: isinstance(x, str) and x == const)
        if "enum" in s:
            if not isinstance(s["enum"], list) or not all(isinstance(e, str) for e in s["enum"]):
                raise Unsupported("an enum that is not a list of strings")
            enum = frozenset(s["enum"])
            checks.append(lambda x: isinstance(x, str) and x in enum)
        if "pattern" in s:
            search = re.compile(s["pattern"]).search
            checks.append(lambda x: not isinstance(x, str) or search(x) is not None)
        if "minLength" in s:
            min_len = s["minLength"]
            checks.append(lambda x: not isinstance(x, str) or len(x) >= min_len)
        if "minimum" in s:
            minimum = s["minimum"]
            if not _is_number(minimum):
                raise Unsupported("a minimum that is not a number")
            checks.append(lambda x: not _is_number(x) or not x < minimum)
        if "format" in s:
            if s["format"] not in FORMATS:
                raise Unsupported(f"format {s['format']!r}")
            checks.append(_strings_only(FORMATS[s["format"]]))
        if "required" in s:
            required = list(s["required"])
            checks.append(lambda x: not isinstance(x, dict) or all(r in x for r in required))
        checks.extend(_object_checks(s, build))
        if "items" in s:
            item = build(s["items"])
            checks.append(lambda x: not isinstance(x, list) or all(item(i) for i in x))
        if "if" in s:
            cond = build(s["if"])
            then = build(s["then"]) if "then" in s else (lambda x: True)
            other = build(s["else"]) if "else" in s else (lambda x: True)
            checks.append(lambda x: then(x) if cond(x) else other(x))
        if "anyOf" in s:
            if not isinstance(s["anyOf"], list) or not s["anyOf"]:
                raise Unsupported("anyOf that is not a non-empty list")
            options = [build(o) for o in s["anyOf"]]
            checks.append(lambda x: any(o(x) for o in options))
        return _all(checks)

    return build(schema, top=True)


def _object_checks(s: dict[str, Any], build: Callable[[Any], Check]) -> list[Check]:
    """``properties``, ``additionalProperties`` and ``propertyNames``: each applies to objects only."""
    checks: list[Check] = []
    props = s.get("properties", {})
    if not isinstance(props, dict):
        raise Unsupported("properties that are not an object")
    compiled = {name: build(sub) for name, sub in props.items()}
    if compiled:

        def properties(x: Any) -> bool:
            return not isinstance(x, dict) or all(c(x[k]) for k, c in compiled.items() if k in x)

        checks.append(properties)
    if "additionalProperties" in s:
        extra = s["additionalProperties"]
        if extra is False:
            checks.append(lambda x: not isinstance(x, dict) or all(k in compiled for k in x))
        else:
            check_extra = build(extra)
            checks.append(
                lambda x: not isinstance(x, dict) or all(check_extra(v) for k, v in x.items() if k not in compiled)
            )
    if "propertyNames" in s:
        name_ok = build(s["propertyNames"])
        checks.append(lambda x: not isinstance(x, dict) or all(name_ok(k) for k in x))
    return checks
