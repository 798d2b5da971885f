"""A fleet run's SnapshotList, built one node at a time and written without ever holding every node parsed.

``snapshot --all-nodes`` used to keep every node's parsed snapshot in a list, build the whole SnapshotList
(:func:`collector.model.snapshot_list`), validate it (:func:`kubectl_aicr.schema.validate`), convert it to the
``--api-version`` asked for (:func:`kubectl_aicr.formats.convert`, validated again) and serialise it whole
(:func:`kubectl_aicr.snapshot_io.dumps`): at 1,000 nodes of ~300 KB that peaked at ~1.45 GB. A
:class:`FleetDocument` gives the same document, byte for byte, and the same verdicts and messages:

* :meth:`FleetDocument.add` takes one node's checked snapshot and keeps only a compact, compressed copy of the item
  as it will be written (converted to the output apiVersion first, when that differs); :meth:`~FleetDocument.fail`
  records a node that produced none.
* :meth:`FleetDocument.check` is the whole-list schema check without the whole list. Each item was validated on its
  own (the caller's promise); an item that is a ``Snapshot`` (not a list) of the list's own apiVersion is then valid
  inside the list too, because the list schema checks its items with the very definition the item was checked
  against. So the list is validated with every such item replaced by one small valid placeholder: jsonschema finds
  exactly the errors it would find in the whole list (the items left contribute none), and the message is the same
  as before, down to the ``$.items[N]`` path of an item that does not belong. Then the same for the converted list.
* :meth:`FleetDocument.chunks` yields the serialised document piece by piece, one item parsed at a time: the list's
  skeleton (kind, apiVersion, metadata, failures, in the order snapshot_list and convert give them) is serialised
  around a placeholder item and split there, and each item is serialised in the same context the whole document
  gives it (JSON: ``json.dumps`` re-indented to its depth; YAML: the item dumped as the only one of an ``items:``
  list, which is exactly how the emitter writes it inside the whole list).
* :func:`deliver` checks, then writes to ``-o`` through :func:`kubectl_aicr.snapshot_io.save_text`: standard output
  and files (atomically) are written as the pieces come; a ConfigMap is one object, so its text is joined first.

An item is kept as its compact canonical JSON (``ensure_ascii``: every string, even a lone surrogate, comes back
exactly; dict order and types too) compressed by zlib at level :data:`ZLIB_LEVEL`; bench/bench_fleetdoc.py measures
the choices.
"""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any, Iterator, Mapping, Optional

from collector.model import KIND, FailureDoc, node_name, snapshot_list
from kubectl_aicr import fastyaml, formats
from kubectl_aicr.errors import InvalidInput

if TYPE_CHECKING:
    from kubectl_aicr.kube import Connect
    from kubectl_aicr.locations import Location

#: ``source`` of the whole-list check, as the fleet run has always named it.
LIST_SOURCE = "fleet snapshot"
#: zlib level of the item store: 1 is ~3x faster than 6 for ~15% more bytes (bench/bench_fleetdoc.py).
ZLIB_LEVEL = 1


def _encode(doc: Any) -> bytes:
    """The compact canonical JSON of an item (what :func:`_decode` gives back exactly)."""
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=True, allow_nan=False).encode("ascii")


_decode = json.loads
#: The JSON text a serialised document ends with, as :func:`kubectl_aicr.snapshot_io.dumps` writes it.
_INDENT = 2


#: The items a frame is built with (typed so that snapshot_list returns a plain dict).
_NO_ITEMS: list[dict[str, Any]] = []


@dataclass
class _Item:
    node: str  # the sort key: collector.model.snapshot_list sorts by node_name(doc) or ""
    blob: bytes  # the item as written, encoded and compressed
    original: Optional[bytes] = None  # the snapshot as added, packed: kept only when it does not belong in the list
    convert_error: Optional[BaseException] = None  # what converting it raised (check raises it)
    converted_invalid: bool = False  # the converted item does not belong in the converted list (check names why)


def _placeholder(api_version: str) -> dict[str, Any]:
    """A minimal valid Snapshot of ``api_version``: it stands for an item already known valid inside the list."""
    return {"kind": "Snapshot", "apiVersion": api_version, "measurements": []}


def _belongs(doc: Any, api_version: str) -> bool:
    """Whether a snapshot valid on its own is also valid as an item of an ``api_version`` SnapshotList: a mapping
    whose kind is Snapshot or absent (alone, any other kind is checked as that kind of document; in the list, as a
    Snapshot) written in that apiVersion (its own schema is the list's then; a missing apiVersion is read as
    v1alpha1, as when it is alone)."""
    if not isinstance(doc, dict) or doc.get("kind", KIND) != KIND:
        return False
    try:
        return formats.detect(doc) == api_version
    except InvalidInput:
        return False


class FleetDocument:
    """The SnapshotList of a fleet run, accumulated node by node (see the module docstring).

    ``api_version``: the apiVersion the document is written in (``snapshot --api-version``); the list is built in
    :data:`collector.model.API_VERSION`, as :func:`collector.model.snapshot_list` builds it, and converted when
    that differs, exactly as ``snapshot`` converts any document it writes."""

    def __init__(self, *, api_version: str = formats.DEFAULT_WRITE, level: int = ZLIB_LEVEL) -> None:
        formats.check_write_version(api_version)
        self.api_version = api_version
        self._level = level
        self._items: list[_Item] = []
        self._failures: list[FailureDoc] = []
        self._list_api = str(snapshot_list(_NO_ITEMS, {})["apiVersion"])
        self._convert = api_version != self._list_api
        self.fetched_bytes = 0  #: the ``raw`` bytes of every node added (for the run's progress line)
        self.held_bytes = 0  #: what the compressed items take in memory

    # ------------------------------------------------------------------ building

    def add(self, raw: bytes, doc: Mapping[str, Any]) -> None:
        """One node's snapshot: ``doc``, already validated alone (:func:`kubectl_aicr.schema.validate`), parsed from
        ``raw`` (counted in :attr:`fetched_bytes`). Only a compressed copy is kept; ``doc`` may be dropped after."""
        item = _Item(node=node_name(doc) or "", blob=b"")
        if not _belongs(doc, self._list_api):
            item.original = self._pack(doc)
        written: Any = doc
        if self._convert:
            from kubectl_aicr.schema import problems

            try:
                written = formats.convert(dict(doc), self.api_version)
                item.converted_invalid = not _belongs(written, self.api_version) or bool(problems(written))
            except Exception as e:  # noqa: BLE001 - raised by check, in the order the whole-list conversion meets it
                item.convert_error = e
        item.blob = self._pack(written)
        self._items.append(item)
        self.fetched_bytes += len(raw)
        self.held_bytes += len(item.blob) + (len(item.original) if item.original is not None else 0)

    def fail(self, node: str, reason: str) -> None:
        """A node that produced no snapshot, and why (the SnapshotList's ``failures``)."""
        self._failures.append({"node": node, "reason": reason})

    @property
    def count(self) -> int:
        """Nodes whose snapshot is in the document."""
        return len(self._items)

    @property
    def failures(self) -> list[FailureDoc]:
        """The failed nodes, in the order they were recorded."""
        return list(self._failures)

    def _pack(self, doc: Any) -> bytes:
        return zlib.compress(_encode(doc), self._level)

    def _unpack(self, blob: bytes) -> Any:
        return _decode(zlib.decompress(blob))

    def _sorted(self) -> list[_Item]:
        return sorted(self._items, key=lambda i: i.node)  # stable, as snapshot_list's sort

    # ------------------------------------------------------------------ the document's frame

    def _skeleton(self, metadata: Mapping[str, str], items: list[Any]) -> dict[str, Any]:
        """The list as snapshot_list builds it (in its apiVersion), with ``items`` standing for the nodes."""
        doc = snapshot_list(_NO_ITEMS, metadata, failures=self._failures)
        doc["items"] = items
        return doc

    def _written_skeleton(self, metadata: Mapping[str, str], items: list[Any]) -> dict[str, Any]:
        """The list as written: :meth:`_skeleton`, converted as ``snapshot`` converts it (a converted list has
        ``items`` last, after ``failures``)."""
        doc = snapshot_list(_NO_ITEMS, metadata, failures=self._failures)
        if self._convert:
            doc = formats.convert(doc, self.api_version)
        doc["items"] = items
        return doc

    def check(self, metadata: Mapping[str, str]) -> None:
        """Raise what validating the whole SnapshotList raises today, with the same message (see the module
        docstring): :class:`~kubectl_aicr.errors.SnapshotInvalid` for ``fleet snapshot``; when the document is
        converted, then whatever converting the list raises and the converted list's ``snapshot written as ...``."""
        from kubectl_aicr.schema import validate

        items = self._sorted()
        stand_in = _placeholder(self._list_api)
        validate(
            self._skeleton(metadata, [stand_in if i.original is None else self._unpack(i.original) for i in items]),
            source=LIST_SOURCE,
        )
        if not self._convert:
            return
        for i in items:
            if i.convert_error is not None:
                raise i.convert_error
        stand_in = _placeholder(self.api_version)
        validate(
            self._written_skeleton(
                metadata, [self._unpack(i.blob) if i.converted_invalid else stand_in for i in items]
            ),
            source=f"snapshot written as {self.api_version}",
        )

    # ------------------------------------------------------------------ writing

    def document(self, metadata: Mapping[str, str]) -> dict[str, Any]:
        """The whole document as written, every item parsed (for small fleets and tests; :meth:`chunks` otherwise)."""
        return self._written_skeleton(metadata, [self._unpack(i.blob) for i in self._sorted()])

    def chunks(self, fmt: str, metadata: Mapping[str, str]) -> Iterator[str]:
        """The text :func:`kubectl_aicr.snapshot_io.dumps` gives for :meth:`document`, in pieces (the frame, then one
        node at a time), holding one item parsed at a time. Call :meth:`check` first: this does not validate."""
        _check_format(fmt)
        items = self._sorted()
        if not items:
            yield _dumps(self._written_skeleton(metadata, []), fmt)
            return
        marker = _marker(metadata, self._failures)
        frame = _dumps(self._written_skeleton(metadata, [marker]), fmt)
        if fmt == "json":
            at = frame.index(json.dumps(marker))
            head, tail = frame[:at], frame[at + len(json.dumps(marker)) :]
            indent = "\n" + head[head.rindex("\n") + 1 :]
            separator = "," + indent
            yield head
            for n, item in enumerate(items):
                text = json.dumps(self._unpack(item.blob), indent=_INDENT, ensure_ascii=False, allow_nan=False)
                yield (separator if n else "") + text.replace("\n", indent)
            yield tail
            return
        line = f"items:\n- {marker}\n"
        at = frame.index(line)
        yield frame[: at + len("items:\n")]
        for item in items:
            text = fastyaml.dump({"items": [self._unpack(item.blob)]})
            if not text.startswith("items:\n"):  # pragma: no cover - PyYAML always writes a block mapping here
                raise AssertionError(f"unexpected YAML layout: {text[:40]!r}")
            yield text[len("items:\n") :]
        yield frame[at + len(line) :]

    def write(self, out: IO[bytes], fmt: str, metadata: Mapping[str, str]) -> int:
        """:meth:`chunks` encoded as UTF-8 into the binary stream ``out``; returns the bytes written."""
        n = 0
        for chunk in self.chunks(fmt, metadata):
            data = chunk.encode("utf-8")
            out.write(data)
            n += len(data)
        return n


def _check_format(fmt: str) -> None:
    """Refuse an unknown format with :func:`kubectl_aicr.snapshot_io.dumps`'s message, before anything is written."""
    if fmt not in ("json", "yaml"):
        _dumps({}, fmt)


def _dumps(doc: Any, fmt: str) -> str:
    from kubectl_aicr.snapshot_io import dumps

    return dumps(doc, fmt)


def _marker(metadata: Mapping[str, str], failures: list[FailureDoc]) -> str:
    """A plain string found nowhere in the frame, to split the serialised frame at."""
    text = repr((dict(metadata), failures))
    n = 0
    while f"fleetdoc-items-{n}" in text:
        n += 1
    return f"fleetdoc-items-{n}"


def deliver(
    fleet: FleetDocument,
    metadata: Mapping[str, str],
    dest: Location,
    fmt: str,
    *,
    connect: Optional[Connect] = None,
    overwrite: bool = False,
) -> str:
    """Check the document (:meth:`FleetDocument.check`) and write it to ``dest`` in ``fmt``: standard output and
    files as it is serialised (a file atomically, so a failure leaves it as it was), a ``cm://`` ConfigMap through
    ``connect`` (replaced only when it is one of our snapshots, unless ``overwrite``). Returns where it went, as
    :func:`kubectl_aicr.snapshot_io.save` does."""
    from kubectl_aicr.snapshot_io import save_text

    _check_format(fmt)
    fleet.check(metadata)
    return save_text(fleet.chunks(fmt, metadata), dest, fmt, connect=connect, overwrite=overwrite)
