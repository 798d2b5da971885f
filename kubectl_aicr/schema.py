"""The Snapshot JSON Schemas (Draft 2020-12) shipped in this package, one per apiVersion
(:data:`kubectl_aicr.formats.SCHEMA_FILES`), and validation against the one a document names.

Every snapshot the CLI reads or writes goes through :func:`validate` (or :func:`problems`), which reports every
error with its JSON path, plus the few rules a JSON Schema cannot express (unique measurement types and
unique subtypes within a type).

What a check costs: a document is first put to :func:`kubectl_aicr.quickschema.compile`'s yes/no check of the
same schema (no jsonschema import); only a document it calls invalid goes to jsonschema, which then words every
error. jsonschema is imported without the format libraries its ``format-nongpl`` extra would load
(:data:`UNUSED_FORMAT_MODULES`) and checks exactly the formats the schema declares
(:func:`kubectl_aicr.quickschema.format_checker`), with jsonschema's own messages.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import json
import os
import sys
from typing import Any, Iterator, cast, overload

from collector.model import CLUSTER_LIST_KIND, KIND, LIST_KIND, Document
from kubectl_aicr import formats, quickschema
from kubectl_aicr.errors import SnapshotInvalid

_MAX_MESSAGE = 240
#: Most schema errors collected: past this, checking stops (a broken 6 MB file can hold 300,000 of them).
MAX_PROBLEMS = 100


def _read(path: str) -> str:
    """A file shipped in this package: read straight from disk when the package is a directory (the usual case;
    ``importlib.resources`` would import its readers and ``zipfile``), through ``importlib.resources`` otherwise."""
    on_disk = os.path.join(os.path.dirname(__file__), path)
    if os.path.isfile(on_disk):
        with open(on_disk, encoding="utf-8") as f:
            return f.read()
    from importlib import resources

    return resources.files("kubectl_aicr").joinpath(path).read_text(encoding="utf-8")


@functools.lru_cache(maxsize=len(formats.SUPPORTED))
def _shipped(api_version: str) -> tuple[str, dict[str, Any]]:
    """The text of ``api_version``'s schema file and its document, parsed once."""
    text = _read(formats.SCHEMA_FILES[api_version])
    return text, json.loads(text)


def _renamed(api_version: str) -> dict[str, Any] | None:
    """``api_version``'s schema when it is the shipped file under another name (see :func:`schema_text`); None when
    the file is ``api_version``'s own."""
    shipped = _shipped(api_version)[1]
    shipped_as = shipped["$defs"]["apiVersion"].get("const", api_version)
    if shipped_as == api_version:
        return None
    doc: dict[str, Any] = json.loads(_shipped(api_version)[0])  # a copy: the shipped one stays as read
    doc["$defs"]["apiVersion"]["const"] = api_version
    doc["$id"] = doc["$id"].replace(shipped_as.replace("/", "-"), api_version.replace("/", "-"))
    doc["title"] = doc["title"].replace(shipped_as, api_version)
    return doc


def schema_text(api_version: str = formats.V1ALPHA1) -> str:
    """The schema document of ``api_version`` (one of :data:`formats.SUPPORTED`).

    v1alpha1 and v1 are the files exactly as shipped. aicr.run/v1alpha2 is aicr.run/v1 under its earlier name
    (the original's ADR-013 renamed the group and nothing else), so its schema is the v1 file with the name set
    in ``$defs.apiVersion``, ``$id`` and ``title``: one file to keep right, two exact schemas."""
    renamed = _renamed(api_version)
    return _shipped(api_version)[0] if renamed is None else json.dumps(renamed, indent=2) + "\n"


@functools.lru_cache(maxsize=len(formats.SUPPORTED))
def schema(api_version: str = formats.V1ALPHA1) -> dict[str, Any]:
    """The parsed schema of ``api_version`` (one document per version for the whole process: do not modify it)."""
    renamed = _renamed(api_version)
    return _shipped(api_version)[1] if renamed is None else renamed


#: What jsonschema 4.17's ``_format`` module imports, if installed, for formats no schema of ours declares (hostname,
#: iri, uri, color, json-pointer, uri-template, duration; ``isoduration`` brings ``arrow``), and ``rfc3339_validator``
#: (date-time), which :mod:`kubectl_aicr.quickschema` checks itself: about 40 ms at start-up. Not ``idna``
#: (idn-hostname, 2 ms): requests imports it lazily, maybe in another thread at the moment the block is in place.
UNUSED_FORMAT_MODULES = (
    "fqdn",
    "rfc3987",
    "rfc3986_validator",
    "webcolors",
    "jsonpointer",
    "uri_template",
    "isoduration",
    "rfc3339_validator",
)


@contextlib.contextmanager
def _unimportable(names: tuple[str, ...]) -> Iterator[None]:
    """While inside, ``import NAME`` raises ImportError for each of ``names`` not yet imported (Python's own
    ``sys.modules[NAME] = None`` rule); afterwards they import normally again. Used once per process, around the
    first import of jsonschema (only a document the quick check calls invalid gets there)."""
    blocked = [n for n in names if n not in sys.modules]
    for n in blocked:
        sys.modules[n] = None  # type: ignore[assignment]
    try:
        yield
    finally:
        for n in blocked:
            if n in sys.modules and sys.modules[n] is None:
                del sys.modules[n]


@functools.lru_cache(maxsize=len(formats.SUPPORTED))
def _validator(api_version: str = formats.V1ALPHA1) -> Any:
    # Imported lazily (keeps --help fast) and without the format libraries we never use: jsonschema.__init__
    # imports jsonschema._format, whose optional imports are each guarded by ``suppress(ImportError)``.
    with _unimportable(UNUSED_FORMAT_MODULES):
        from jsonschema import Draft202012Validator

    doc = schema(api_version)
    return Draft202012Validator(doc, format_checker=quickschema.format_checker(quickschema.declared_formats(doc)))


@functools.lru_cache(maxsize=len(formats.SUPPORTED))
def _quick(api_version: str = formats.V1ALPHA1) -> quickschema.Check | None:
    """The yes/no check of ``api_version``'s schema; None if the schema needs jsonschema for every document."""
    try:
        return quickschema.compile(schema(api_version))
    except quickschema.Unsupported:
        return None


def _json_path(parts: Any) -> str:
    out = "$"
    for p in parts:
        if isinstance(p, int):
            out += f"[{p}]"
        elif isinstance(p, str) and p.replace("_", "").replace("-", "").isalnum():
            out += f".{p}"
        else:
            out += "[" + json.dumps(p) + "]"
    return out


def _short(msg: str) -> str:
    return msg if len(msg) <= _MAX_MESSAGE else msg[: _MAX_MESSAGE - 3] + "..."


def _header_problem(doc: Any) -> str | None:
    """A clear one-liner for documents that are not snapshots at all (checked before the schema)."""
    if not isinstance(doc, dict):
        return f"$: expected a Snapshot mapping, got {type(doc).__name__}"
    kind = doc.get("kind")
    if kind is not None and kind not in (KIND, LIST_KIND, CLUSTER_LIST_KIND):
        return f"$.kind: {kind!r} is not a snapshot (expected {KIND!r}, {LIST_KIND!r} or {CLUSTER_LIST_KIND!r})"
    if "apiVersion" in doc and doc["apiVersion"] not in formats.SUPPORTED:
        return formats.unsupported_message(doc["apiVersion"])
    if kind is None and "measurements" not in doc:
        return "$: not a snapshot: it has neither 'kind' nor 'measurements'"
    return None


def _duplicates(snapshot: dict[str, Any], prefix: list[Any]) -> list[str]:
    out: list[str] = []
    seen_types: dict[str, int] = {}
    for i, m in enumerate(snapshot.get("measurements") or []):
        if not isinstance(m, dict):
            continue
        t = m.get("type")
        if isinstance(t, str):
            if t in seen_types:
                out.append(
                    f"{_json_path(prefix + ['measurements', i, 'type'])}: duplicate measurement type {t!r} "
                    f"(first at measurements[{seen_types[t]}])"
                )
            else:
                seen_types[t] = i
        seen_sub: dict[str, int] = {}
        for j, s in enumerate(m.get("subtypes") or []):
            name = s.get("subtype") if isinstance(s, dict) else None
            if isinstance(name, str):
                if name in seen_sub:
                    out.append(
                        f"{_json_path(prefix + ['measurements', i, 'subtypes', j, 'subtype'])}: duplicate "
                        f"subtype {name!r} in {t!r} (first at subtypes[{seen_sub[name]}])"
                    )
                else:
                    seen_sub[name] = j
    return out


_SCALAR_TYPES = (str, int, float, bool)


def _bad_entries(data: Any, keep: int) -> Any:
    """The entries of a ``subtype.data`` map that may break the schema (a key that is not a non-empty string, a value
    that is not a scalar or null), at most ``keep`` of them; ``data`` itself when it is not a mapping."""
    if type(data) is not dict:
        return data
    bad = {}
    for k, v in data.items():
        if type(k) is not str or not k or (v is not None and type(v) not in _SCALAR_TYPES):
            bad[k] = v
            if len(bad) >= keep:
                break
    return bad


def _without_valid_data(doc: Any, keep: int = MAX_PROBLEMS + 1) -> Any:
    """``doc`` with every subtype ``data`` map cut down to its first ``keep`` :func:`_bad_entries` (``{}`` for a
    valid one), copying only the containers on the way. Each entry is checked on its own, so jsonschema then
    reports exactly the same errors (up to ``keep`` per map), about 50x faster on large snapshots: the data maps
    are nearly all of a snapshot and checking them here is one tight loop."""

    def snapshot(s: Any) -> Any:
        ms = s.get("measurements") if type(s) is dict else None
        if type(ms) is not list:
            return s
        out_ms = []
        for m in ms:
            subs = m.get("subtypes") if type(m) is dict else None
            if type(subs) is list:
                m = {
                    **m,
                    "subtypes": [
                        {**st, "data": _bad_entries(st["data"], keep)} if type(st) is dict and "data" in st else st
                        for st in subs
                    ],
                }
            out_ms.append(m)
        return {**s, "measurements": out_ms}

    def document(d: Any) -> Any:
        if type(d) is dict and d.get("kind") == LIST_KIND:
            items = d.get("items")
            return {**d, "items": [snapshot(i) for i in items]} if type(items) is list else d
        return snapshot(d)

    if doc.get("kind") == CLUSTER_LIST_KIND:
        items = doc.get("items")
        if type(items) is not list:
            return doc
        return {
            **doc,
            "items": [
                {**i, "snapshot": document(i["snapshot"])} if type(i) is dict and "snapshot" in i else i for i in items
            ],
        }
    return document(doc)


def stopped_note(limit: int) -> str:
    """The last line of a problem list that was cut at ``limit``."""
    return f"... stopped after the first {limit} errors; fix these and check again"


def problems(doc: Any, *, limit: int = MAX_PROBLEMS) -> list[str]:
    """The problems with ``doc`` as ``"<json path>: <message>"``, sorted by path; empty when valid. At most ``limit``
    schema errors are collected (the first ones found), then :func:`stopped_note` is the last line."""
    head = _header_problem(doc)
    if head:
        return [head]
    version = formats.detect(doc)
    checked = _without_valid_data(doc, limit + 1)
    quick = _quick(version)
    found = (
        []
        if quick is not None and quick(checked)
        else list(itertools.islice(_validator(version).iter_errors(checked), limit + 1))
    )
    stopped = len(found) > limit
    errors = sorted(found[:limit], key=lambda e: ([str(p) for p in e.absolute_path], e.validator))
    out = [f"{_json_path(e.absolute_path)}: {_short(e.message)}" for e in errors]
    if stopped:
        out.append(stopped_note(limit))
    if not out:
        out.extend(_document_duplicates(doc, []))
    return out


def _document_duplicates(doc: dict[str, Any], prefix: list[Any]) -> list[str]:
    """The rules the schema cannot express, in a schema-valid document: unique measurement types and subtypes in
    each snapshot; in a ClusterSnapshotList, each context once (in ``items`` or ``failures``)."""
    kind = doc.get("kind")
    if kind == LIST_KIND:
        return [p for i, item in enumerate(doc.get("items") or []) for p in _duplicates(item, [*prefix, "items", i])]
    if kind != CLUSTER_LIST_KIND:
        return _duplicates(doc, prefix)
    out: list[str] = []
    seen: dict[str, str] = {}
    entries = [("items", i, e) for i, e in enumerate(doc.get("items") or [])]
    entries += [("failures", i, e) for i, e in enumerate(doc.get("failures") or [])]
    for section, i, entry in entries:
        where = f"{section}[{i}]"
        name = entry["context"]
        if name in seen:
            out.append(
                f"{_json_path([*prefix, section, i, 'context'])}: duplicate context {name!r} (first at {seen[name]})"
            )
        else:
            seen[name] = where
        if section == "items":
            out.extend(_document_duplicates(entry["snapshot"], [*prefix, section, i, "snapshot"]))
    return out


@overload
def validate(doc: dict[str, Any], *, source: str) -> dict[str, Any]: ...  # type: ignore[overload-overlap]


@overload
def validate(doc: object, *, source: str) -> Document: ...


def validate(doc: object, *, source: str) -> Document | dict[str, Any]:
    """Return ``doc`` if it is a valid Snapshot (or SnapshotList, or ClusterSnapshotList: typed as a Document,
    tell it apart with :func:`collector.model.is_cluster_list`), typed as one; raise :class:`SnapshotInvalid`
    otherwise. (A ``dict[str, Any]`` comes back as one, for callers whose documents are not typed yet.)"""
    found = problems(doc)
    if found:
        errors = [f for f in found if not f.startswith("... stopped")]
        more = len(errors) - 1
        tail = "" if len(errors) == len(found) else f"; checking stopped after {len(errors)}"
        msg = f"{source}: not a valid snapshot: {found[0]}" + (f" (and {more} more{tail})" if more or tail else "")
        raise SnapshotInvalid(msg, details=found, hint=f"run 'kubectl aicr validate {source}' to see every error")
    return cast(Document, doc)
