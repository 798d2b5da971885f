"""Reading and writing snapshots: files, standard input/output and ``cm://namespace/name`` ConfigMaps.

Reading is strict and safe: size-bounded, UTF-8 only, ``yaml`` safe loading with aliases rejected, then the
JSON Schema. Writing files is atomic (a temporary file renamed into place), so a failed run never truncates
or half-writes the destination.
"""

from __future__ import annotations

import io
import json
import os
import stat
import sys
import tempfile
from dataclasses import dataclass
from typing import IO, Any, Callable, Union

import yaml

from kubectl_aicr import fastyaml
from kubectl_aicr.errors import InvalidInput
from kubectl_aicr.schema import validate

#: Largest snapshot document read (a fleet of 64 nodes is about 10 MB).
MAX_DOCUMENT_BYTES = 50 * 1024 * 1024
FORMATS = ("yaml", "json")

try:  # libyaml when the platform has it (much faster); the pure dumper otherwise
    _Dumper: Any = yaml.CSafeDumper
except AttributeError:  # pragma: no cover - depends on the platform's PyYAML build
    _Dumper = yaml.SafeDumper


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
    import re

    return len(s) <= max_len and re.fullmatch(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?", s) is not None


def parse_location(text: str) -> Location:
    """``-`` | ``cm://namespace/name`` | a file path."""
    text = text.strip()
    if text in ("", "-"):
        return Stdio()
    if text.startswith(CM_SCHEME):
        rest = text[len(CM_SCHEME):]
        ns, sep, name = rest.partition("/")
        if not sep or not ns or not name:
            raise InvalidInput(f"{text!r}: a ConfigMap location is cm://NAMESPACE/NAME")
        if not _dns_label_ok(ns, 63) or "." in ns:
            raise InvalidInput(f"{text!r}: {ns!r} is not a valid namespace name (lowercase letters, digits and '-')")
        if not _dns_label_ok(name, 253):
            raise InvalidInput(f"{text!r}: {name!r} is not a valid ConfigMap name (lowercase letters, digits, '-', '.')")
        return ConfigMapRef(ns, name)
    if "://" in text:
        raise InvalidInput(f"{text!r}: unsupported location; use a file path, '-' or cm://NAMESPACE/NAME")
    return FilePath(text)


# ---------------------------------------------------------------- parsing

def _reject_aliases(doc: Any, source: str) -> None:
    """Refuse YAML anchors/aliases that repeat containers (the 'billion laughs' shape); snapshots never use them."""
    seen: set[int] = set()
    stack = [doc]
    while stack:
        node = stack.pop()
        if isinstance(node, (dict, list)):
            if id(node) in seen:
                raise InvalidInput(f"{source}: YAML aliases (*name) are not allowed in snapshots")
            seen.add(id(node))
            stack.extend(node.values() if isinstance(node, dict) else node)


def parse_document(raw: bytes, *, source: str) -> Any:
    """Bytes -> Python data; JSON when the text starts with '{', YAML otherwise. One clear line on failure."""
    if len(raw) > MAX_DOCUMENT_BYTES:
        raise InvalidInput(f"{source}: {len(raw):,} bytes is larger than the {MAX_DOCUMENT_BYTES:,}-byte limit for a snapshot")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise InvalidInput(f"{source}: not UTF-8 text (byte {e.start}); is it a binary file?") from None
    if text.startswith("\ufeff"):
        text = text[1:]
    if not text.strip():
        raise InvalidInput(f"{source}: empty document")
    if text.lstrip().startswith("{"):
        try:
            return json.loads(text)
        except json.JSONDecodeError as e:
            raise InvalidInput(f"{source}: not valid JSON: {e.msg} at line {e.lineno} column {e.colno}") from None
    try:
        docs = fastyaml.load_all(text)  # = list(yaml.load_all(text, Loader=CSafeLoader)), several times faster
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1} column {mark.column + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise InvalidInput(f"{source}: not valid YAML: {problem}{where}") from None
    docs = [d for d in docs if d is not None]
    if len(docs) != 1:
        raise InvalidInput(f"{source}: expected one YAML document, found {len(docs)}")
    _reject_aliases(docs[0], source)
    return docs[0]


# ---------------------------------------------------------------- reading

def _read_file(path: str) -> bytes:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise InvalidInput(f"{path}: no such file") from None
    except OSError as e:
        raise InvalidInput(f"{path}: cannot read: {e.strerror}") from None
    if stat.S_ISDIR(st.st_mode):
        raise InvalidInput(f"{path}: is a directory, not a snapshot file")
    if stat.S_ISREG(st.st_mode) and st.st_size > MAX_DOCUMENT_BYTES:
        raise InvalidInput(f"{path}: {st.st_size:,} bytes is larger than the {MAX_DOCUMENT_BYTES:,}-byte limit for a snapshot")
    try:
        with open(path, "rb") as f:
            return f.read(MAX_DOCUMENT_BYTES + 1)
    except OSError as e:
        raise InvalidInput(f"{path}: cannot read: {e.strerror}") from None


def _read_stdin(stream: IO[bytes] | None = None) -> bytes:
    stream = stream or sys.stdin.buffer
    if stream.isatty():
        raise InvalidInput("-: standard input is a terminal; pipe a snapshot in (e.g. 'kubectl aicr diff base.yaml - < current.yaml')")
    return stream.read(MAX_DOCUMENT_BYTES + 1)


#: A function that fetches the text stored at a ConfigMap location (see :mod:`kubectl_aicr.cmstore`).
CMReader = Callable[[ConfigMapRef], bytes]


def read_raw(loc: Location, *, cm_reader: CMReader | None = None, stdin: IO[bytes] | None = None) -> bytes:
    if isinstance(loc, Stdio):
        return _read_stdin(stdin)
    if isinstance(loc, FilePath):
        return _read_file(loc.path)
    if cm_reader is None:
        raise InvalidInput(f"{loc}: reading a ConfigMap needs a cluster connection")
    return cm_reader(loc)


def load(loc: Location, *, cm_reader: CMReader | None = None, stdin: IO[bytes] | None = None) -> dict[str, Any]:
    """Read, parse and schema-validate the snapshot (or SnapshotList) at ``loc``."""
    raw = read_raw(loc, cm_reader=cm_reader, stdin=stdin)
    return validate(parse_document(raw, source=str(loc)), source=str(loc))


# ---------------------------------------------------------------- writing

def dumps(doc: Any, fmt: str) -> str:
    """Serialise in the document's own key order (we order snapshots deterministically when we build them)."""
    if fmt == "json":
        return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
    if fmt == "yaml":
        return yaml.dump(doc, Dumper=_Dumper, sort_keys=False, default_flow_style=False, allow_unicode=True, width=1 << 16)
    raise InvalidInput(f"unknown format {fmt!r}; use one of: {', '.join(FORMATS)}")


def write_file_atomic(path: str, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same directory, then rename it into place."""
    directory = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise InvalidInput(f"{path}: is a directory; give a file name for the snapshot")
    if not os.path.isdir(directory):
        raise InvalidInput(f"{path}: directory {directory} does not exist")
    fd, tmp = tempfile.mkstemp(prefix=".aicr-", suffix=".tmp", dir=directory)
    try:
        with io.open(fd, "w", encoding="utf-8") as f:
            f.write(text)
        mode = 0o644
        try:
            mode = stat.S_IMODE(os.stat(path).st_mode)
        except FileNotFoundError:
            umask = os.umask(0)
            os.umask(umask)
            mode = 0o666 & ~umask
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def check_writable(loc: Location) -> None:
    """Fail before any work is done if a file destination cannot be written."""
    if isinstance(loc, FilePath):
        path = loc.path
        if os.path.isdir(path):
            raise InvalidInput(f"{path}: is a directory; give a file name for the snapshot")
        directory = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(directory):
            raise InvalidInput(f"{path}: directory {directory} does not exist")
        if not os.access(directory, os.W_OK):
            raise InvalidInput(f"{path}: directory {directory} is not writable")
