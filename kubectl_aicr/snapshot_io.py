"""Reading and writing snapshots: files, standard input/output and ``cm://namespace/name`` ConfigMaps.

The two directions are symmetric: :func:`load` (``read_raw`` for the bytes) and :func:`save` take a location and,
for ``cm://``, the same ``connect`` (a :data:`kubectl_aicr.kube.Connect`: called only when a ConfigMap is read or
written, so file and stdio runs never connect); the ConfigMap layout is :mod:`kubectl_aicr.cmstore`'s.

Reading is strict and safe: size-bounded, UTF-8 only, ``yaml`` safe loading, then :func:`check_structure` (no
aliases, duplicate or non-string keys, NaN/infinity, huge integers or deep nesting), then the JSON Schema. Writing a
file is atomic for regular files (a temporary file renamed into place, following symlinks), so a failed run never
truncates or half-writes the destination; devices, FIFOs and ``/dev/stdout`` are written through, other special
files refused (see :func:`plan_write`).
"""

from __future__ import annotations

import errno
import json
import math
import os
import re
import stat
import sys
import tempfile
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any, Iterable, Union

import yaml

from collector.model import Document
from kubectl_aicr import fastyaml
from kubectl_aicr.errors import InvalidInput, safe_text
from kubectl_aicr.locations import CM_SCHEME as CM_SCHEME  # the location types are part of this module's API
from kubectl_aicr.locations import MAX_DOCUMENT_BYTES as MAX_DOCUMENT_BYTES
from kubectl_aicr.locations import ConfigMapRef as ConfigMapRef
from kubectl_aicr.locations import FilePath as FilePath
from kubectl_aicr.locations import Location as Location
from kubectl_aicr.locations import Stdio as Stdio
from kubectl_aicr.locations import parse_location as parse_location
from kubectl_aicr.schema import validate

if TYPE_CHECKING:
    from kubectl_aicr.kube import Connect

FORMATS = ("yaml", "json")


# ---------------------------------------------------------------- parsing

#: Deepest nesting a document may have (a SnapshotList's data values sit at level 8).
MAX_DEPTH = 32
#: Largest integer magnitude read, in decimal digits (a 64-bit counter has 20): bigger ones cannot be compared with
#: floats, and past 4,300 digits Python refuses to print them.
MAX_INT_DIGITS = 100
_MAX_INT_BITS = int(MAX_INT_DIGITS * 3.3219280948873626)  # log2(10)
#: Where a problem is: ``(parent, key)`` links back to the root (``None``), turned into a JSON path on demand.
_Where = Union[tuple[Any, Any], None]


def _path(where: _Where) -> str:
    from kubectl_aicr.schema import _json_path

    keys: list[Any] = []
    while where is not None:
        where, key = where
        keys.append(key)
    return _json_path(reversed(keys))


def _value_problem(v: Any) -> str | None:
    """Why a scalar cannot be in a snapshot (NaN/infinity, a huge integer), or None."""
    t = type(v)
    if t is float and not math.isfinite(v):
        return f"{v!r} is not a number a snapshot can hold (NaN and infinity are not JSON)"
    if t is int and v.bit_length() > _MAX_INT_BITS:
        return (
            f"an integer of about {int(v.bit_length() / 3.3219280948873626):,} digits is too large "
            f"(at most {MAX_INT_DIGITS} digits; write bigger numbers as strings)"
        )
    return None


def check_structure(doc: Any, source: str, duplicates: Iterable[tuple[int, Any]] = ()) -> None:
    """Refuse what no snapshot can be, naming its JSON path: nesting deeper than :data:`MAX_DEPTH`, containers reached
    twice (YAML aliases: the 'billion laughs' shape), keys that are not strings or repeat within a mapping
    (``duplicates``: ``(id(mapping), key)`` from the parser), NaN/infinity and integers over :data:`MAX_INT_DIGITS`
    digits. One iterative pass; the schema and the diff engine may then recurse and print values safely."""
    dups = dict(duplicates)
    seen: set[int] = set()
    stack: list[tuple[Any, _Where, int]] = [(doc, None, 1)]
    while stack:
        node, where, depth = stack.pop()
        if id(node) in seen:
            raise InvalidInput(f"{source}: YAML aliases (*name) are not allowed in snapshots")
        seen.add(id(node))
        if depth > MAX_DEPTH:
            raise InvalidInput(f"{source}: {_path(where)}: nested more than {MAX_DEPTH} levels deep; not a snapshot")
        if isinstance(node, dict):
            if id(node) in dups:
                raise InvalidInput(
                    f"{source}: {_path(where)}: duplicate key {safe_text(repr(dups[id(node)]))} "
                    "(each key may appear once)"
                )
            items: Iterable[tuple[Any, Any]] = node.items()
            for k, v in items:
                if type(k) is not str:
                    raise InvalidInput(
                        f"{source}: {_path(where)}: key {safe_text(repr(k))} ({type(k).__name__}) "
                        "is not a string (quote it in YAML)"
                    )
                if isinstance(v, (dict, list)):
                    stack.append((v, (where, k), depth + 1))
                else:
                    why = _value_problem(v)
                    if why:
                        raise InvalidInput(f"{source}: {_path((where, k))}: {why}")
        elif isinstance(node, list):
            for i, v in enumerate(node):
                if isinstance(v, (dict, list)):
                    stack.append((v, (where, i), depth + 1))
                else:
                    why = _value_problem(v)
                    if why:
                        raise InvalidInput(f"{source}: {_path((where, i))}: {why}")
        else:
            why = _value_problem(node)
            if why:
                raise InvalidInput(f"{source}: {_path(where)}: {why}")


def _json_load(text: str, source: str) -> tuple[Any, list[tuple[int, Any]]]:
    duplicates: list[tuple[int, Any]] = []

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        out = dict(items)
        if len(out) != len(items):
            seen: set[str] = set()
            for k, _ in items:
                if k in seen:
                    duplicates.append((id(out), k))
                    break
                seen.add(k)
        return out

    def constant(name: str) -> Any:
        raise InvalidInput(f"{source}: {name} is not a number a snapshot can hold (NaN and infinity are not JSON)")

    return json.loads(text, object_pairs_hook=pairs, parse_constant=constant), duplicates


def parse_document(raw: bytes, *, source: str) -> Any:
    """Bytes -> Python data; JSON when the text starts with '{', YAML otherwise, then :func:`check_structure`.
    One clear line on failure."""
    if len(raw) > MAX_DOCUMENT_BYTES:
        raise InvalidInput(
            f"{source}: {len(raw):,} bytes is larger than the {MAX_DOCUMENT_BYTES:,}-byte limit for a snapshot"
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise InvalidInput(f"{source}: not UTF-8 text (byte {e.start}); is it a binary file?") from None
    if text.startswith("\ufeff"):
        text = text[1:]
    if not text.strip():
        raise InvalidInput(f"{source}: empty document")
    too_deep = f"{source}: nested more than {MAX_DEPTH} levels deep; not a snapshot"
    if text.lstrip().startswith("{"):
        try:
            doc, duplicates = _json_load(text, source)
        except json.JSONDecodeError as e:
            raise InvalidInput(f"{source}: not valid JSON: {e.msg} at line {e.lineno} column {e.colno}") from None
        except RecursionError:
            raise InvalidInput(too_deep) from None
        except ValueError as e:  # an integer literal of more than 4,300 digits
            raise InvalidInput(f"{source}: not a snapshot: {str(e).split(';')[0]}") from None
        check_structure(doc, source, duplicates)
        return doc
    duplicates = []
    try:  # = list(yaml.load_all(text, Loader=CSafeLoader)), several times faster
        docs = fastyaml.load_all(text, duplicates=duplicates)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1} column {mark.column + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise InvalidInput(f"{source}: not valid YAML: {safe_text(problem)}{where}") from None
    except RecursionError:
        raise InvalidInput(too_deep) from None
    except ValueError as e:  # an integer of more than 4,300 digits, a date out of range
        raise InvalidInput(f"{source}: not valid YAML: {safe_text(str(e).split(';')[0])}") from None
    docs = [d for d in docs if d is not None]
    if len(docs) != 1:
        raise InvalidInput(f"{source}: expected one YAML document, found {len(docs)}")
    check_structure(docs[0], source, duplicates)
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
        raise InvalidInput(
            f"{path}: {st.st_size:,} bytes is larger than the {MAX_DOCUMENT_BYTES:,}-byte limit for a snapshot"
        )
    try:
        with open(path, "rb") as f:
            return f.read(MAX_DOCUMENT_BYTES + 1)
    except OSError as e:
        raise InvalidInput(f"{path}: cannot read: {e.strerror}") from None


def _read_stdin(stream: IO[bytes] | None = None) -> bytes:
    if stream is None:
        if sys.stdin is None:
            raise InvalidInput("-: standard input is closed; pipe a snapshot in or give a file name")
        stream = sys.stdin.buffer
    if stream.isatty():
        raise InvalidInput(
            "-: standard input is a terminal; pipe a snapshot in (e.g. 'kubectl aicr diff base.yaml - < current.yaml')"
        )
    return stream.read(MAX_DOCUMENT_BYTES + 1)


def read_raw(loc: Location, *, connect: Connect | None = None, stdin: IO[bytes] | None = None) -> bytes:
    """The bytes at ``loc``: a file, standard input (``stdin``, else the process's) or a ConfigMap (through
    ``connect``)."""
    if isinstance(loc, Stdio):
        return _read_stdin(stdin)
    if isinstance(loc, FilePath):
        return _read_file(loc.path)
    if connect is None:
        raise InvalidInput(f"{loc}: reading a ConfigMap needs a cluster connection")
    from kubectl_aicr import cmstore

    return cmstore.read(connect(), loc)


def load(loc: Location, *, connect: Connect | None = None, stdin: IO[bytes] | None = None) -> Document:
    """Read, parse and schema-validate the snapshot (or SnapshotList) at ``loc``."""
    raw = read_raw(loc, connect=connect, stdin=stdin)
    parsed: object = parse_document(raw, source=str(loc))  # any JSON value, until validate says which document
    return validate(parsed, source=str(loc))


# ---------------------------------------------------------------- writing


def save(
    doc: Document | dict[str, Any], dest: Location, fmt: str, *, connect: Connect | None = None, overwrite: bool = False
) -> str:
    """Serialise ``doc`` (:func:`dumps`) and write it to ``dest``: standard output, a file (:func:`write_file_atomic`)
    or a ConfigMap through ``connect`` (:func:`kubectl_aicr.cmstore.write`: replaced only when it is one of our
    snapshots, unless ``overwrite``). Returns where it went, for messages: ``stdout``, the path or ``cm://ns/name``."""
    return save_text((dumps(doc, fmt),), dest, fmt, connect=connect, overwrite=overwrite)


def save_text(
    chunks: Iterable[str], dest: Location, fmt: str, *, connect: Connect | None = None, overwrite: bool = False
) -> str:
    """:func:`save` of a document already serialised in ``fmt``, given as consecutive pieces of its text (e.g. one
    node of a SnapshotList at a time, see :mod:`kubectl_aicr.fleetdoc`): standard output and files are written
    piece by piece as they come (a file still atomically); a ConfigMap is one object, so its text is joined first."""
    if isinstance(dest, Stdio):
        for chunk in chunks:
            sys.stdout.write(chunk)
        sys.stdout.flush()
        return "stdout"
    if isinstance(dest, FilePath):
        write_file_chunks(dest.path, (chunk.encode("utf-8") for chunk in chunks))
        return dest.path
    if connect is None:
        raise InvalidInput(f"{dest}: writing a ConfigMap needs a cluster connection")
    from kubectl_aicr import cmstore

    cmstore.write(connect(), dest, "".join(chunks), fmt, overwrite=overwrite)
    return str(dest)


def dumps(doc: Document | dict[str, Any], fmt: str) -> str:
    """Serialise in the document's own key order (we order snapshots deterministically when we build them)."""
    if fmt == "json":
        return json.dumps(doc, indent=2, ensure_ascii=False, allow_nan=False) + "\n"
    if fmt == "yaml":
        return fastyaml.dump(doc)
    raise InvalidInput(f"unknown format {fmt!r}; use one of: {', '.join(FORMATS)}")


#: Paths that name one of this process's open file descriptors: written through that descriptor, never replaced.
_FD_ALIAS = re.compile(r"/dev/(?:(stdin)|(stdout)|(stderr)|fd/(\d+))|/proc/(?:self|thread-self|(\d+))/fd/(\d+)")
_MAX_SYMLINKS = 40


@dataclass(frozen=True)
class WritePlan:
    """How ``-o PATH`` is written: ``atomic`` (a temporary file renamed over ``path``, a regular file or a new one),
    ``through`` (opened for writing: a character device or a FIFO) or ``fd`` (this process's descriptor ``fd``)."""

    how: str
    path: str
    fd: int = -1


def _fd_alias(path: str) -> int | None:
    m = _FD_ALIAS.fullmatch(path)
    if m is None:
        return None
    stdin, stdout, stderr, fd, pid, pid_fd = m.groups()
    if stdin or stdout or stderr:
        return 0 if stdin else 1 if stdout else 2
    if fd is not None:
        return int(fd)
    return int(pid_fd) if pid is None or int(pid) == os.getpid() else None


def _kernel_path(path: str) -> bool:
    real = os.path.realpath(os.path.dirname(path) or ".")
    return any(real == root or real.startswith(root + "/") for root in ("/proc", "/sys"))


def plan_write(path: str) -> WritePlan:
    """Decide how to write ``path`` without touching it: symlinks are followed to their target (which is written,
    the link kept); a regular file or a new path is replaced atomically; a character device (``/dev/null``, a tty),
    a FIFO, ``/dev/stdout``, ``/dev/stderr`` or ``/dev/fd/N`` is written through; anything else (a directory, a block
    device, a socket, a file under /proc or /sys) is refused with :class:`InvalidInput`."""
    p = os.path.abspath(path)
    for _ in range(_MAX_SYMLINKS):
        fd = _fd_alias(p)
        if fd is not None:
            if fd == 0:
                raise InvalidInput(f"{path}: is standard input; give a file name or '-' for standard output")
            return WritePlan("fd", p, fd)
        try:
            st = os.lstat(p)
        except FileNotFoundError:
            break  # a new file (or a dangling link's target): created atomically below
        except OSError as e:
            raise InvalidInput(f"{path}: cannot write: {e.strerror}") from None
        if not stat.S_ISLNK(st.st_mode):
            break
        p = os.path.normpath(os.path.join(os.path.dirname(p), os.readlink(p)))
    else:
        raise InvalidInput(f"{path}: too many levels of symbolic links")
    shown = path if p == os.path.abspath(path) else f"{path} (-> {p})"
    found: os.stat_result | None
    try:
        found = os.stat(p)
    except FileNotFoundError:
        found = None
    except OSError as e:
        raise InvalidInput(f"{shown}: cannot write: {e.strerror}") from None
    mode = found.st_mode if found is not None else stat.S_IFREG  # a new file will be a regular one
    if stat.S_ISCHR(mode) or stat.S_ISFIFO(mode):
        return WritePlan("through", p)
    if stat.S_ISDIR(mode):
        raise InvalidInput(f"{shown}: is a directory; give a file name for the snapshot")
    if not stat.S_ISREG(mode):
        kind = "a block device" if stat.S_ISBLK(mode) else "a socket" if stat.S_ISSOCK(mode) else "a special file"
        raise InvalidInput(f"{shown}: is {kind}; refusing to write a snapshot over it (give a regular file)")
    if _kernel_path(p):
        raise InvalidInput(f"{shown}: is a kernel file under /proc or /sys, not a place for a snapshot")
    directory = os.path.dirname(p)
    if not os.path.isdir(directory):
        raise InvalidInput(f"{shown}: directory {directory} does not exist")
    return WritePlan("atomic", p)


def _write_error(where: str, e: OSError, *, replaced_nothing: bool = False) -> InvalidInput:
    full = e.errno in (errno.ENOSPC, errno.EDQUOT)
    what = "no space left on the device" if full else (e.strerror or str(e))
    hint = "the file was left as it was" if replaced_nothing else None
    return InvalidInput(f"{where}: cannot write the snapshot: {what}", hint=hint)


def _write_all(fd: int, chunks: Iterable[bytes]) -> None:
    for data in chunks:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]


def _write_fd(plan: WritePlan, data: Iterable[bytes], shown: str) -> None:
    for stream in (sys.stdout, sys.stderr):
        if stream is not None and getattr(stream, "fileno", None) is not None:
            try:
                if stream.fileno() == plan.fd:
                    stream.flush()
            except (OSError, ValueError):
                pass
    try:
        os.fstat(plan.fd)
    except OSError:
        raise InvalidInput(f"{shown}: file descriptor {plan.fd} is not open") from None
    try:
        _write_all(plan.fd, data)
    except BrokenPipeError:
        raise
    except OSError as e:
        raise _write_error(shown, e) from None


def _write_through(path: str, data: Iterable[bytes], shown: str) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_NOCTTY | getattr(os, "O_CLOEXEC", 0))  # no O_CREAT, no O_TRUNC
    except OSError as e:
        raise InvalidInput(f"{shown}: cannot open for writing: {e.strerror}") from None
    try:
        mode = os.fstat(fd).st_mode
        if not (stat.S_ISCHR(mode) or stat.S_ISFIFO(mode)):  # swapped for something else since plan_write looked
            raise InvalidInput(f"{shown}: changed while being opened; not writing")
        _write_all(fd, data)
    except BrokenPipeError:
        raise
    except OSError as e:
        raise _write_error(shown, e) from None
    finally:
        os.close(fd)


def _write_atomic(path: str, data: Iterable[bytes], shown: str) -> None:
    directory = os.path.dirname(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=".aicr-", suffix=".tmp", dir=directory)
    except OSError as e:
        raise InvalidInput(f"{shown}: cannot create a file in {directory}: {e.strerror}") from None
    try:
        try:
            _write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            old = os.stat(path)
        except FileNotFoundError:
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o666 & ~umask)
        else:
            os.chmod(tmp, stat.S_IMODE(old.st_mode))
            if os.geteuid() == 0 and (old.st_uid, old.st_gid) != (0, 0):
                os.chown(tmp, old.st_uid, old.st_gid)  # root replacing someone's file keeps it theirs
        os.replace(tmp, path)
    except BaseException as e:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        if isinstance(e, OSError):
            raise _write_error(shown, e, replaced_nothing=True) from None
        raise


def write_file_atomic(path: str, text: str) -> None:
    """Write ``text`` to ``path`` as :func:`plan_write` decides: a regular (or new) file is replaced atomically
    through a temporary file in its directory, so a failed run (disk full, Ctrl-C) leaves it untouched and no
    temporary file behind; devices, FIFOs and ``/dev/std*`` are written through. Errors are :class:`InvalidInput`."""
    write_file_chunks(path, (text.encode("utf-8"),))


def write_file_chunks(path: str, chunks: Iterable[bytes]) -> None:
    """:func:`write_file_atomic` of the bytes ``chunks`` yields, each written as it comes (the whole is never held).
    An exception raised while producing them leaves a regular file untouched (the temporary file is removed);
    a device or FIFO keeps what was written before it."""
    plan = plan_write(path)
    shown = path if plan.path == os.path.abspath(path) else f"{path} (-> {plan.path})"
    if plan.how == "fd":
        _write_fd(plan, chunks, shown)
    elif plan.how == "through":
        _write_through(plan.path, chunks, shown)
    else:
        _write_atomic(plan.path, chunks, shown)


def check_writable(loc: Location) -> None:
    """Fail before any work is done if a file destination cannot be written."""
    if isinstance(loc, FilePath):
        plan = plan_write(loc.path)
        directory = os.path.dirname(plan.path)
        if plan.how == "atomic" and not os.access(directory, os.W_OK):
            raise InvalidInput(f"{loc.path}: directory {directory} is not writable")
        if plan.how == "fd":
            try:
                os.fstat(plan.fd)
            except OSError:
                raise InvalidInput(f"{loc.path}: file descriptor {plan.fd} is not open") from None
