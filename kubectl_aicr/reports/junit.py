"""JUnit XML as GitLab's merge-request test widget and the usual GitHub reporter actions read it:
``<testsuites>`` / ``<testsuite name tests failures errors skipped>`` / ``<testcase classname name>`` with at most one
``<failure message type>`` (its text lists every finding), ``<error message>`` or ``<skipped message>``.

Text is made valid XML 1.0: characters XML cannot hold (most C0 controls, lone surrogates, U+FFFE/U+FFFF) are
written as visible escapes (``\\x1b``).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Optional, Sequence

_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
#: Longest ``message`` attribute (the full text is in the element's body).
MAX_MESSAGE = 500


def xml_text(text: str) -> str:
    return _NOT_XML.sub(lambda m: f"\\x{ord(m.group(0)):02x}" if ord(m.group(0)) < 0x100 else
                        f"\\u{ord(m.group(0)):04x}", text)


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


def _counts(el: ET.Element, cases: Sequence[TestCase]) -> None:
    el.set("tests", str(len(cases)))
    el.set("failures", str(_count(cases, "failure")))
    el.set("errors", str(_count(cases, "error")))
    el.set("skipped", str(_count(cases, "skipped")))
    el.set("time", "0")


def render(name: str, suites: Sequence[Suite]) -> str:
    """The XML document, UTF-8, with its declaration and a final newline."""
    root = ET.Element("testsuites", {"name": xml_text(name)})
    _counts(root, [c for s in suites for c in s.cases])
    for s in suites:
        se = ET.SubElement(root, "testsuite", {"name": xml_text(s.name)})
        _counts(se, s.cases)
        if s.properties:
            props = ET.SubElement(se, "properties")
            for k, v in s.properties:
                ET.SubElement(props, "property", {"name": xml_text(k), "value": xml_text(v)})
        for c in s.cases:
            ce = ET.SubElement(se, "testcase", {"classname": xml_text(c.classname), "name": xml_text(c.name),
                                                "time": "0"})
            o = c.outcome
            if o is None:
                continue
            oe = ET.SubElement(ce, o.kind, {"message": _message(o.message)})
            if o.type:
                oe.set("type", xml_text(o.type))
            if o.text:
                oe.text = xml_text(o.text)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
