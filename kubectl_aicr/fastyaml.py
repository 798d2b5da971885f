"""A faster drop-in for ``list(yaml.load_all(text, Loader=CSafeLoader))`` on snapshot-shaped documents.

PyYAML with libyaml still spends most of its time in Python (node objects, marks, one resolver call per scalar):
about 1.3 s for a 5 MB snapshot. Snapshots are large flat maps of scalars written in plain block style, so two
faster paths are tried first, each giving up (``_Fallback``) at the first thing it does not handle exactly:

1. :func:`_block_load`, a line parser for the block-style subset every snapshot writer emits (PyYAML's dumper and
   Go's yaml.v3): ``key: value`` mappings, ``- item`` sequences (indented or not), ``{}``/``[]``, comments, and
   single-line plain, single-quoted and double-quoted scalars. Plain scalars are typed by PyYAML's own resolver
   regexes and ``SafeConstructor`` functions. It gives up on anchors, aliases, tags, block scalars (``|``, ``>``),
   multi-line scalars, flow collections, complex keys, directives, several documents, tabs or odd line breaks
   outside quotes, non-printable characters, and any line it cannot place.
2. :func:`_build` over libyaml's composed node tree with a cheaper resolver (any document libyaml accepts), giving
   up on merge keys (``<<``), ``!!set``/``!!omap``/explicit tags, containers reached twice through an alias.
3. Otherwise PyYAML's standard ``CSafeLoader``, so results and error messages are always exactly PyYAML's.

The equivalence is tested against PyYAML on the fixtures, on tricky scalars and on randomly generated documents
(tests/unit/test_diff_fastyaml.py).

Duplicate keys load as PyYAML loads them (the last one wins), but every path can also report them: pass a list as
``duplicates`` and it receives ``(id(mapping), key)`` for each mapping that repeats a key (its own keys, not those a
merge key ``<<`` brings in), so a caller can refuse them with the key's path.
"""

from __future__ import annotations

import re
from typing import Any, Callable

import yaml
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from yaml.representer import SafeRepresenter

try:  # libyaml when the platform has it; the pure loader otherwise (still correct, just slower)
    _Base: Any = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - depends on the platform's PyYAML build
    _Base = yaml.SafeLoader

_STR = "tag:yaml.org,2002:str"
_MAP = "tag:yaml.org,2002:map"
_SEQ = "tag:yaml.org,2002:seq"
#: Where duplicate keys are reported: ``(id(mapping), key)`` per mapping that repeats a key (see the docstring).
Duplicates = list[tuple[int, Any]]
#: Scalar tags whose SafeConstructor function we call directly (everything else falls back).
_SCALAR_TAGS = frozenset("tag:yaml.org,2002:" + t for t in ("null", "bool", "int", "float", "timestamp", "binary"))

_RESOLVERS: dict[Any, list[tuple[str, Any]]] = dict(_Base.yaml_implicit_resolvers)
_FAST_RESOLVE = not _RESOLVERS.get(None) and not _Base.yaml_path_resolvers


class _Fallback(Exception):
    """The document uses a YAML feature the fast path leaves to the next one."""


class _Loader(_Base):  # type: ignore[misc]
    if _FAST_RESOLVE:

        def resolve(self, kind: Any, value: Any, implicit: Any, _get: Callable[..., Any] = _RESOLVERS.get) -> str:
            if kind is ScalarNode:
                if implicit[0]:
                    for tag, regexp in _get(value[:1], ()):
                        if regexp.match(value):
                            return str(tag)
                return _STR
            return str(super().resolve(kind, value, implicit))


# ============================================================================ 2. composed nodes, cheaper resolver


def _build(loader: Any, root: Node, duplicates: Duplicates | None = None) -> Any:
    """Python data for ``root``, as ``SafeConstructor`` would build it; raises :class:`_Fallback` when unsure."""
    constructors = loader.yaml_constructors
    seen: set[int] = set()

    def scalar(node: Node) -> Any:
        tag = node.tag
        if tag == _STR:
            return node.value
        if tag in _SCALAR_TAGS:
            return constructors[tag](loader, node)
        raise _Fallback

    def container(node: Node) -> Any:
        if id(node) in seen:
            raise _Fallback  # an alias to a container: the standard path reports it
        seen.add(id(node))
        if isinstance(node, MappingNode) and node.tag == _MAP:
            return {}
        if isinstance(node, SequenceNode) and node.tag == _SEQ:
            return []
        raise _Fallback

    if isinstance(root, ScalarNode):
        return scalar(root)
    top = container(root)
    stack: list[tuple[Node, Any]] = [(root, top)]
    while stack:
        node, out = stack.pop()
        if isinstance(out, dict):
            for key_node, value_node in node.value:
                if not isinstance(key_node, ScalarNode):
                    raise _Fallback
                key = scalar(key_node)
                if duplicates is not None and key in out:
                    duplicates.append((id(out), key))
                if isinstance(value_node, ScalarNode):
                    out[key] = scalar(value_node)
                else:
                    child = container(value_node)
                    out[key] = child
                    stack.append((value_node, child))
        else:
            for item in node.value:
                if isinstance(item, ScalarNode):
                    out.append(scalar(item))
                else:
                    child = container(item)
                    out.append(child)
                    stack.append((item, child))
    return top


# ============================================================================ 1. the block-style line parser

#: Characters outside the plain printable set, or that YAML reads as line breaks (NEL, LS, PS) or a BOM: the
#: complement of [\t \n \x20-\x7E \xA0-\u2027 \u202A-\uD7FF \uE000-\uFEFE \uFF00-\uFFFD \U00010000-\U0010FFFF],
#: written as the short list it is (the negated class took 7 ms to compile at every start).
_NON_PRINTABLE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff\ufeff\ufffe\uffff]")
_DOUBLE = re.compile(r'"((?:[^"\\]|\\.)*)"')
_SINGLE = re.compile(r"'((?:[^']|'')*)'")
_ESCAPE = re.compile(r"\\(x[0-9A-Fa-f]{2}|u[0-9A-Fa-f]{4}|U[0-9A-Fa-f]{8}|.)")
_ESCAPES = {
    "0": "\x00",
    "a": "\x07",
    "b": "\x08",
    "t": "\t",
    "\t": "\t",
    "n": "\n",
    "v": "\x0b",
    "f": "\x0c",
    "r": "\r",
    "e": "\x1b",
    " ": " ",
    '"': '"',
    "/": "/",
    "\\": "\\",
    "N": "\x85",
    "_": "\xa0",
    "L": "\u2028",
    "P": "\u2029",
}
_SIMPLE_INT = re.compile(r"-?[1-9][0-9]*\Z|0\Z")
#: First characters a plain key or value may not start with here (YAML indicators, quotes, tab).
_NOT_PLAIN_START = frozenset("-?:,[]{}#&*!|>'\"%@`\t ")
#: The longest implicit (single-line) key YAML allows is 1024 characters; stay well below.
_MAX_KEY = 1000
_CONSTRUCTOR = SafeConstructor()
#: First characters of a plain scalar that no implicit resolver handles and no indicator uses: always a string.
_PLAIN_STR_START = (
    frozenset(chr(c) for c in range(0x21, 0x7F)) - _NOT_PLAIN_START - {k for k in _RESOLVERS if isinstance(k, str)}
)


def _unescape(m: "re.Match[str]") -> str:
    esc = m.group(1)
    if len(esc) == 1:
        if esc not in _ESCAPES:
            raise _Fallback
        return _ESCAPES[esc]
    code = int(esc[1:], 16)
    if 0xD800 <= code <= 0xDFFF or code > 0x10FFFF:
        raise _Fallback
    return chr(code)


def _after_quoted(rest: str) -> None:
    """What follows a quoted scalar on its line must be nothing or a comment."""
    if rest and not (rest.strip(" ") == "" or rest.startswith(" #")):
        raise _Fallback


def _quoted(text: str) -> tuple[str, str]:
    """(value, what follows) for a quoted scalar at the start of ``text``."""
    if text[0] == '"':
        m = _DOUBLE.match(text)
        if m is None:
            raise _Fallback  # unterminated on this line: a multi-line scalar
        inner = m.group(1)
        return (_ESCAPE.sub(_unescape, inner) if "\\" in inner else inner), text[m.end() :]
    m = _SINGLE.match(text)
    if m is None:
        raise _Fallback
    return m.group(1).replace("''", "'"), text[m.end() :]


def _plain(text: str) -> Any:
    """A plain scalar's value, typed as PyYAML's resolver and SafeConstructor type it."""
    for tag, regexp in _RESOLVERS.get(text[:1], ()):
        if regexp.match(text):
            break
    else:
        return text
    if tag == "tag:yaml.org,2002:int" and _SIMPLE_INT.match(text):
        return int(text)
    if tag == "tag:yaml.org,2002:null":
        return None
    if tag not in _SCALAR_TAGS:
        raise _Fallback  # merge key, '=' value key...
    return _CONSTRUCTOR.yaml_constructors[tag](_CONSTRUCTOR, ScalarNode(tag, text))


def _value(text: str) -> Any:
    """The scalar (or empty flow collection) after ``key: `` or ``- ``; ``text`` has no leading space."""
    first = text[0]
    if first == '"' or first == "'":
        value, rest = _quoted(text)
        _after_quoted(rest)
        return value
    if text == "{}":
        return {}
    if text == "[]":
        return []
    if first in _NOT_PLAIN_START and not (first == "-" and len(text) > 1 and text[1] not in " \t"):
        raise _Fallback
    hash_at = text.find(" #")
    if hash_at >= 0:
        text = text[:hash_at]
    text = text.rstrip(" ")
    if ": " in text or text.endswith(":") or "\t" in text:
        raise _Fallback
    return _plain(text)


def _key(content: str) -> tuple[Any, str]:
    """(key, the rest after ``:`` with leading spaces removed) for a ``key: value`` or ``key:`` line."""
    first = content[0]
    if first == '"' or first == "'":
        key, rest = _quoted(content)
        if not rest.startswith(":") or (len(rest) > 1 and rest[1] != " ") or len(content) - len(rest) > _MAX_KEY:
            raise _Fallback
        rest = rest[1:].lstrip(" ")
    else:
        if first in _NOT_PLAIN_START:
            raise _Fallback
        at = content.find(": ")
        if at < 0:
            if not content.endswith(":"):
                raise _Fallback
            at = len(content) - 1
        text = content[:at]
        if at > _MAX_KEY or " #" in text or "\t" in text or text != text.rstrip(" ") or text.endswith(":"):
            raise _Fallback
        key = _plain(text)
        rest = content[at + 1 :].lstrip(" ")
    if rest.startswith("#"):
        raise _Fallback
    return key, rest


def _is_item(content: str) -> bool:
    return content == "-" or content.startswith("- ")


def _starts_mapping(text: str) -> bool:
    """Whether the text after ``- `` is the first ``key: value`` of a mapping rather than a scalar."""
    if text[0] == '"' or text[0] == "'":
        return _quoted(text)[1].startswith(":")
    return ": " in text or text.endswith(":")


class _Block:
    """Recursive descent over (indent, content) lines."""

    def __init__(self, lines: list[tuple[int, str]], duplicates: Duplicates | None = None) -> None:
        self.lines = lines
        self.duplicates = duplicates
        self.i = 0
        #: value text -> parsed scalar (all immutable); snapshots repeat values a lot ("0", "active", "true")
        self.values: dict[str, Any] = {}

    def node(self, indent: int) -> Any:
        return self.sequence(indent) if _is_item(self.lines[self.i][1]) else self.mapping(indent)

    def nested(self, indent: int, parent_is_key: bool) -> Any:
        """The value of ``key:`` / ``-`` with nothing after it: a deeper block, an indentless sequence, or null."""
        if self.i < len(self.lines):
            n, content = self.lines[self.i]
            if n > indent:
                return self.node(n)
            if n == indent and parent_is_key and _is_item(content):
                return self.sequence(indent)
        return None

    def mapping(self, indent: int) -> dict[Any, Any]:
        out: dict[Any, Any] = {}
        lines = self.lines
        cache = self.values
        duplicates = self.duplicates
        while self.i < len(lines):
            n, content = lines[self.i]
            if n != indent:
                if n < indent:
                    break
                raise _Fallback
            at = content.find(": ")
            if 0 < at <= _MAX_KEY and content[0] in _PLAIN_STR_START and content[at - 1] not in " :":
                # The common line: a plain key that can only be a string, then a value on the same line.
                key: Any = content[:at]
                if " #" in key or "\t" in key:
                    raise _Fallback
                rest = content[at + 2 :]
                if rest[0] == " ":
                    rest = rest.lstrip(" ")
            else:
                if _is_item(content):
                    raise _Fallback
                key, rest = _key(content)
            self.i += 1
            if duplicates is not None and key in out:
                duplicates.append((id(out), key))
            if rest == "":
                out[key] = self.nested(indent, True)
            elif rest in cache:
                out[key] = cache[rest]
            else:
                value = _value(rest)
                if not isinstance(value, (dict, list)):
                    cache[rest] = value
                out[key] = value
        return out

    def sequence(self, indent: int) -> list[Any]:
        out: list[Any] = []
        lines = self.lines
        while self.i < len(lines):
            n, content = lines[self.i]
            if n < indent or (n == indent and not _is_item(content)):
                break
            if n > indent:
                raise _Fallback
            rest = content[1:].lstrip(" ")
            if rest == "":
                self.i += 1
                out.append(self.nested(indent, False))
            elif _is_item(rest) or rest.startswith(("? ", "#")):
                raise _Fallback
            elif not _starts_mapping(rest):
                self.i += 1
                out.append(_value(rest))
            else:  # "- key: value": a mapping whose keys sit at the column of this first key
                column = n + len(content) - len(rest)
                lines[self.i] = (column, rest)
                out.append(self.mapping(column))
        return out


def _block_load(text: str, duplicates: Duplicates | None = None) -> Any:
    """The single document in ``text`` if it is in the block-style subset; raises :class:`_Fallback` otherwise."""
    if "\r" in text or _NON_PRINTABLE.search(text):
        raise _Fallback
    lines: list[tuple[int, str]] = []
    started = False  # a first "---" was seen
    for raw in text.split("\n"):
        content = raw.lstrip(" ")
        if not content or content.startswith("#"):
            continue
        if content[0] == "\t":
            raise _Fallback
        n = len(raw) - len(content)
        if n == 0 and (content.startswith(("---", "...", "%"))):
            if content == "---" and not lines and not started:
                started = True
                continue
            raise _Fallback
        lines.append((n, content.rstrip(" ")))
    if not lines or lines[0][0] != 0:
        raise _Fallback
    parser = _Block(lines, duplicates)
    doc = parser.node(0)
    if parser.i != len(lines):
        raise _Fallback
    return doc


# ============================================================================ 3. PyYAML, reporting duplicates


class _DuplicateReporting(_Base):  # type: ignore[misc]
    """The standard safe loader that also reports duplicate keys into ``self.duplicates``."""

    duplicates: Duplicates

    def construct_yaml_map(self, node: MappingNode) -> Any:
        data: dict[Any, Any] = {}
        yield data
        own = [k for k, _ in node.value if k.tag != "tag:yaml.org,2002:merge"]  # before flatten_mapping merges
        data.update(self.construct_mapping(node))
        seen: set[Any] = set()
        for key_node in own:
            try:
                key = self.construct_object(key_node, deep=True)  # already built: constructed_objects caches it
                if key in seen:
                    self.duplicates.append((id(data), key))
                    break
                seen.add(key)
            except TypeError:  # an unhashable key: construct_mapping has refused it already
                break


_DuplicateReporting.add_constructor(_MAP, _DuplicateReporting.construct_yaml_map)


def _pyyaml_load_all(text: str, duplicates: Duplicates | None) -> list[Any]:
    if duplicates is None:
        return list(yaml.load_all(text, Loader=_Base))
    loader = _DuplicateReporting(text)
    loader.duplicates = duplicates
    try:
        docs = []
        while loader.check_data():
            docs.append(loader.get_data())
        return docs
    finally:
        loader.dispose()


# ============================================================================ entry point


def load_all(text: str, *, duplicates: Duplicates | None = None) -> list[Any]:
    """Every document in ``text``, exactly as ``list(yaml.load_all(text, Loader=CSafeLoader))`` returns them;
    ``duplicates``, when given, receives the mappings that repeat a key (see the module docstring)."""
    found: Duplicates | None = [] if duplicates is not None else None
    try:
        docs = [_block_load(text, found)]
        if found and duplicates is not None:
            duplicates.extend(found)
        return docs
    except Exception:  # noqa: BLE001 - _Fallback, or a constructor failing (a bad date...): PyYAML reports it its way
        pass
    loader = _Loader(text)
    try:
        docs = []
        found = [] if duplicates is not None else None
        while loader.check_node():  # a syntax error here is libyaml's, the same the standard loader raises
            node = loader.get_node()
            try:  # build each document before parsing the next, as PyYAML does (same error order)
                docs.append(_build(loader, node, found))
            except Exception:  # noqa: BLE001 - _Fallback or a constructor error: PyYAML raises it in its own order
                raise _Fallback from None
        if found and duplicates is not None:
            duplicates.extend(found)
        return docs
    except _Fallback:
        pass
    finally:
        loader.dispose()
    return _pyyaml_load_all(text, duplicates)


def _pyyaml_dump(doc: Any) -> str:
    """:func:`dump` by PyYAML itself: the reference the fast path must match byte for byte, and its fallback."""
    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    text: str = yaml.dump(
        doc, Dumper=dumper, sort_keys=False, default_flow_style=False, allow_unicode=True, width=_WIDTH
    )
    return text


# ============================================================================ dump: a direct block-style emitter
#
# What libyaml's emitter (the one CSafeDumper drives) writes for the documents handled here, derived from its
# yaml_emitter_analyze_scalar / yaml_emitter_select_scalar_style and the block-collection states:
#
# * mappings in block style, keys at the mapping's indent; a value that is a non-empty mapping goes on the next lines,
#   indented 2 more; a value that is a non-empty list goes on the next lines at the key's own indent ("indentless");
# * list items "- " at the list's indent; an item that is a non-empty mapping or list starts on the same line, its
#   entries indented 2 more than the dash;
# * empty mappings and lists in flow style: "{}" and "[]";
# * None, bools, ints and floats plain, as SafeRepresenter spells them (each read back as what it is);
# * a string plain when it would read back as a string (PyYAML's implicit resolvers find no other tag) and libyaml
#   allows it plain in block context (no indicator at its start, no ": " or " #", no space at either end, not
#   "---..." or "..."...), single-quoted (quotes doubled) otherwise; double-quoted, escaped as libyaml escapes, when it
#   holds a character libyaml does not print as is (a tab, another control character, a BOM, a non-BMP character).
#
# Everything else raises _Unsupported and the whole document goes through PyYAML: other types (subclasses too),
# non-str keys, containers reached twice (PyYAML writes anchors), strings holding a line break (LF, CR, NEL, U+2028/9)
# or a lone surrogate, keys near libyaml's 128-byte simple-key limit, lines near the width (libyaml folds a scalar at
# a space past it), a scalar as the root, and any dumper whose representers or resolvers are not the stock ones.

_WIDTH = 1 << 16
#: Lines longer than this (indent, key and value) are left to PyYAML: libyaml folds at a space past ``_WIDTH``.
_LINE_LIMIT = _WIDTH - 1024
#: libyaml writes a key of more than 128 bytes as a complex key (``? key``): the fast path keeps well below.
_KEY_BYTES = 100
#: What the fast path leaves to PyYAML in a string: line breaks (libyaml writes them over several lines) and lone
#: surrogates (not UTF-8: PyYAML refuses them).
_BREAKS_CHARS = "[\\n\\r\\x85\\u2028\\u2029\\ud800-\\udfff]"
#: What libyaml does not print as is (tab, other controls, BOM, non-characters, non-BMP): the string is then written
#: double-quoted with these escaped (and '"' and backslash).
_SPECIAL_CHARS = "[\\x00-\\x09\\x0b\\x0c\\x0e-\\x1f\\x7f-\\x84\\x86-\\x9f\\ufeff\\ufffe\\uffff\\U00010000-\\U0010ffff]"
_ESCAPED_CHARS = _SPECIAL_CHARS[:-1] + '"\\\\]'
#: libyaml's short escapes; any other escaped character is \\xXX, \\uXXXX or \\UXXXXXXXX (upper-case hex).
_SHORT_ESCAPES = {"\0": r"\0", "\a": r"\a", "\b": r"\b", "\t": r"\t", "\v": r"\v", "\f": r"\f", "\x1b": r"\e"}
_SHORT_ESCAPES.update({'"': r"\"", "\\": r"\\"})
#: First characters that make libyaml quote a string (an indicator or a space at the start), whatever follows.
_QUOTED_START = frozenset("#,[]{}&*!|>'\"%@` ")
#: Strings already decided: their text ("" when the string needs the fallback). Bounded by :data:`_CACHE_MAX`.
_TEXTS: dict[str, str] = {}
_CACHE_MAX = 1 << 16
#: The stock resolvers the decisions in :data:`_TEXTS` were taken with (first character -> the regexps; with their
#: tags), and a fingerprint telling a change.
_resolvers: dict[Any, list[Any]] = {}
_tagged: dict[Any, list[tuple[str, Any]]] = {}
_fingerprint: tuple[int, int] | None = None
#: _BREAKS_CHARS, _SPECIAL_CHARS and _ESCAPED_CHARS compiled, at the first string that needs them (about 1 ms)
_patterns: tuple[Any, Any, Any] | None = None
#: Documents the fast path wrote (tests check it is used).
fast_hits = 0


class _Unsupported(Exception):
    """The document holds something the fast dumper leaves to PyYAML."""


def _escape(m: "re.Match[str]") -> str:
    ch = m.group()
    short = _SHORT_ESCAPES.get(ch)
    if short is not None:
        return short
    code = ord(ch)
    return f"\\x{code:02X}" if code <= 0xFF else f"\\u{code:04X}" if code <= 0xFFFF else f"\\U{code:08X}"


def _string_text(s: str) -> str:
    """How libyaml writes the str ``s`` as a block-context scalar; "" when the fast path must not write it."""
    global _patterns
    if not (s.isascii() and s.isprintable()):
        if _patterns is None:
            _patterns = (re.compile(_BREAKS_CHARS), re.compile(_SPECIAL_CHARS), re.compile(_ESCAPED_CHARS))
        breaks, special, escaped = _patterns
        if breaks.search(s):
            return ""
        if special.search(s):
            return '"' + escaped.sub(_escape, s) + '"'  # libyaml's double quotes: no other style allows these
    if len(s) > _LINE_LIMIT:
        return ""
    if not s:
        return "''"  # the empty string reads back as null plain
    first = s[0]
    if (
        first in _QUOTED_START  # an indicator or a space at the start
        or s[-1] in " :"  # a space at the end; a colon reads as a key's
        or ((first == "-" or first == "?") and (len(s) == 1 or s[1] == " "))  # an item, a complex key
        or ": " in s
        or " #" in s  # a comment
        or ((first == "-" or first == ".") and s.startswith(("---", "...")))  # a document marker
    ):
        return "'" + s.replace("'", "''") + "'"
    for regexp in _resolvers.get(first, ()):
        if regexp.match(s):
            return "'" + s.replace("'", "''") + "'"  # plain, it would read back as an int, bool, null, date...
    return s


def _text(s: str) -> str:
    text = _TEXTS.get(s)
    if text is None:
        if len(_TEXTS) >= _CACHE_MAX:
            _TEXTS.clear()
        text = _TEXTS[s] = _string_text(s)
    if not text:
        raise _Unsupported
    return text


def _key_text(k: Any) -> str:
    if type(k) is not str:
        raise _Unsupported
    if len(k) > _KEY_BYTES // 3 and (
        len(k) > _KEY_BYTES or (not k.isascii() and len(k.encode("utf-8", "surrogatepass")) > _KEY_BYTES)
    ):
        raise _Unsupported
    return _text(k)


def _float_text(v: float) -> str:
    if v != v:
        text = ".nan"
    elif v == _INF:
        text = ".inf"
    elif v == -_INF:
        text = "-.inf"
    else:
        text = repr(v).lower()
        if "." not in text and "e" in text:
            text = text.replace("e", ".0e", 1)  # 1e+17: the float resolver needs a dot
    for tag, regexp in _tagged.get(text[0], ()):
        if regexp.match(text):
            if tag == _FLOAT:
                return text
            break
    raise _Unsupported


_INF = float("inf")
_FLOAT = "tag:yaml.org,2002:float"


def _scalar_text(v: Any) -> str:
    """A value that is not a str, dict or list."""
    t = type(v)
    if v is None:
        return "null"
    if t is bool:
        return "true" if v else "false"
    if t is int:
        return str(v)  # always read back as an int (str() refuses a huge one: PyYAML then raises it its way)
    if t is float:
        return _float_text(v)
    raise _Unsupported


def _mapping(d: dict[Any, Any], indent: int, prefix: str, out: list[str], seen: set[int]) -> None:
    """The entries of the non-empty ``d`` at ``indent``; ``prefix`` goes before the first key ("" after "- ")."""
    pad = " " * indent
    append = out.append
    for k, v in d.items():
        key = _key_text(k)
        t = type(v)
        if t is str:
            text = _text(v)
            if indent + len(key) + len(text) > _LINE_LIMIT:
                raise _Unsupported
            append(f"{prefix}{key}: {text}\n")
        elif t is dict or t is list:
            if id(v) in seen:
                raise _Unsupported  # PyYAML writes an anchor and an alias
            seen.add(id(v))
            if not v:
                append(f"{prefix}{key}: {{}}\n" if t is dict else f"{prefix}{key}: []\n")
            elif t is dict:
                append(f"{prefix}{key}:\n")
                _mapping(v, indent + 2, pad + "  ", out, seen)
            else:
                append(f"{prefix}{key}:\n")
                _sequence(v, indent, pad, out, seen)
        else:
            append(f"{prefix}{key}: {_scalar_text(v)}\n")
        prefix = pad


def _sequence(items: list[Any], indent: int, prefix: str, out: list[str], seen: set[int]) -> None:
    """The items of the non-empty ``items`` at ``indent``; ``prefix`` goes before the first dash ("" after "- ")."""
    pad = " " * indent
    append = out.append
    for v in items:
        t = type(v)
        if t is str:
            text = _text(v)
            if indent + len(text) > _LINE_LIMIT:
                raise _Unsupported
            append(f"{prefix}- {text}\n")
        elif t is dict or t is list:
            if id(v) in seen:
                raise _Unsupported
            seen.add(id(v))
            if not v:
                append(f"{prefix}- {{}}\n" if t is dict else f"{prefix}- []\n")
            elif t is dict:
                append(f"{prefix}- ")
                _mapping(v, indent + 2, "", out, seen)
            else:
                append(f"{prefix}- ")
                _sequence(v, indent + 2, "", out, seen)
        else:
            append(f"{prefix}- {_scalar_text(v)}\n")
        prefix = pad


def _stock_dumper(dumper: Any) -> bool:
    """Whether ``dumper`` is libyaml's CSafeDumper with PyYAML's own representers and resolvers (else: PyYAML);
    a change to the resolvers clears the decisions taken with the old ones."""
    global _resolvers, _tagged, _fingerprint
    representers = dumper.yaml_representers
    for t, function in _STOCK_REPRESENTERS:
        if representers.get(t) is not function:
            return False
    resolvers = dumper.yaml_implicit_resolvers
    if None in resolvers or dumper.yaml_path_resolvers:
        return False
    fingerprint = (id(resolvers), sum(len(v) for v in resolvers.values()))
    if fingerprint != _fingerprint:
        if any(tag == _STR for v in resolvers.values() for tag, _ in v):
            return False  # a string the resolvers read back as a string: not worth the care
        _TEXTS.clear()
        _tagged = {k: list(v) for k, v in resolvers.items()}
        _resolvers = {k: [regexp for _, regexp in v] for k, v in resolvers.items()}
        _fingerprint = fingerprint
    return True


_STOCK_REPRESENTERS = (
    (str, SafeRepresenter.represent_str),
    (dict, SafeRepresenter.represent_dict),
    (list, SafeRepresenter.represent_list),
    (int, SafeRepresenter.represent_int),
    (bool, SafeRepresenter.represent_bool),
    (float, SafeRepresenter.represent_float),
    (type(None), SafeRepresenter.represent_none),
)


def _fast_dump(doc: Any) -> str:
    """:func:`dump`'s text written directly; raises :class:`_Unsupported` for what it leaves to PyYAML."""
    dumper = getattr(yaml, "CSafeDumper", None)
    if dumper is None or not _stock_dumper(dumper):
        raise _Unsupported
    t = type(doc)
    if t is not dict and t is not list:
        raise _Unsupported
    if not doc:
        return "{}\n" if t is dict else "[]\n"
    out: list[str] = []
    seen = {id(doc)}
    if t is dict:
        _mapping(doc, 0, "", out, seen)
    else:
        _sequence(doc, 0, "", out, seen)
    return "".join(out)


def dump(doc: Any) -> str:
    """``doc`` as block-style YAML the way every writer here writes it: keys in the document's own order, unicode as
    is, no line folding (a long value stays on one line); libyaml's dumper where the platform has it (much faster),
    PyYAML's pure one otherwise (the same text).

    Byte for byte what PyYAML writes (:func:`_pyyaml_dump`), several times faster for snapshot-shaped documents:
    with libyaml, a document of dicts, lists, strs, ints, bools, floats and None is written directly (see the
    comment above :data:`_WIDTH`); anything else, and everything without libyaml, goes through PyYAML."""
    global fast_hits
    try:
        text = _fast_dump(doc)
    except Exception:  # noqa: BLE001 - _Unsupported, a too-deep document, str() of a huge int: PyYAML's way
        return _pyyaml_dump(doc)
    fast_hits += 1
    return text
