"""JUnit XML as GitLab's merge-request test widget and the usual GitHub reporter actions read it:
``<testsuites>`` / ``<testsuite name tests failures errors skipped>`` / ``<testcase classname name>`` with at most one
``<failure message type>`` (its text lists every finding), ``<error message>`` or ``<skipped message>``.

Text is made valid XML 1.0: characters XML cannot hold (most C0 controls, lone surrogates, U+FFFE/U+FFFF) are
written as visible escapes (``\\x1b``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Optional, Sequence
from xml.sax.saxutils import escape, quoteattr

_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
#: Longest ``message`` attribute (the full text is in the element's body).
MAX_MESSAGE = 500


def xml_text(text: str) -> str:
    return _NOT_XML.sub(
        lambda m: f"\\x{ord(m.group(0)):02x}" if ord(m.group(0)) < 0x100 else f"\\u{ord(m.group(0)):04x}", text
    )


def _message(text: str) -> str:
    text = xml_text(text.replace("\r", " ").replace("\n", " "))
    return text if len(text) <= MAX_MESSAGE else text[: MAX_MESSAGE - 1] + "…"


@dataclass(frozen=True)
class Outcome:
    kind: str  # "failure" | "error" | "skipped"
    message: str
    text: str = ""
    type: str = ""


@dataclass(frozen=True)
class TestCase:
    classname: str
    name: str
    outcome: Optional[Outcome] = None


@dataclass(frozen=True)
class Suite:
    name: str
    cases: Sequence[TestCase]
    properties: Sequence[tuple[str, str]] = field(default_factory=tuple)


def _count(cases: Sequence[TestCase], kind: str) -> int:
    return sum(1 for c in cases if c.outcome is not None and c.outcome.kind == kind)


def _attr(text: str) -> str:
    return quoteattr(xml_text(text), {"\n": "&#10;", "\r": "&#13;", "\t": "&#9;"})


def _counts(cases: Sequence[TestCase]) -> str:
    return (
        f'tests="{len(cases)}" failures="{_count(cases, "failure")}" errors="{_count(cases, "error")}" '
        f'skipped="{_count(cases, "skipped")}" time="0"'
    )


def render(name: str, suites: Sequence[Suite]) -> str:
    """The XML document, UTF-8, with its declaration and a final newline (written directly: a fleet's report holds
    100,000 testcases)."""
    out = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f"<testsuites name={_attr(name)} {_counts([c for s in suites for c in s.cases])}>",
    ]
    for s in suites:
        out.append(f"  <testsuite name={_attr(s.name)} {_counts(s.cases)}>")
        if s.properties:
            out.append("    <properties>")
            out += [f"      <property name={_attr(k)} value={_attr(v)} />" for k, v in s.properties]
            out.append("    </properties>")
        for c in s.cases:
            head = f'    <testcase classname={_attr(c.classname)} name={_attr(c.name)} time="0"'
            o = c.outcome
            if o is None:
                out.append(head + " />")
                continue
            typ = f" type={_attr(o.type)}" if o.type else ""
            body = f">{escape(xml_text(o.text))}</{o.kind}>" if o.text else " />"
            out += [head + ">", f"      <{o.kind} message={_attr(_message(o.message))}{typ}{body}", "    </testcase>"]
        out.append("  </testsuite>")
    out.append("</testsuites>")
    return "\n".join(out) + "\n"
