"""Several clusters in one run: ``snapshot --context a --context b ...`` and ``snapshot --all-contexts``.

Each kubeconfig context is captured by the single-cluster path as it is (:func:`kubectl_aicr.deploy.run.plan` and
:func:`~kubectl_aicr.deploy.run.execute`), with its own :class:`~kubectl_aicr.kube.KubeOptions` (the context named,
every other connection flag as given: ``-n`` applies to all) and its own :class:`~kubectl_aicr.kube.Kube` (and rate
limit), each in a thread of its own, all at once. The kubeconfig is only ever read: its ``current-context`` is never
written, so nothing the user runs meanwhile in another shell sees a switched context (the seed use case's shell loop
over ``kubectl config use-context`` does exactly that).

Each run hands its document, in ``--api-version``, to a ``deliver`` that keeps it instead of writing it: a one-node
run's Snapshot as it is; an ``--all-nodes`` run's SnapshotList as the single-cluster fleet run streams it
(:class:`~kubectl_aicr.deploy.run.FleetDelivery`, :class:`~kubectl_aicr.fleetdoc.FleetDocument`: each node compressed
as it arrives, the list checked when the run ends), never whole in memory. Once every run has finished, the one
:func:`~collector.model.cluster_snapshot_list` of them all is checked (:func:`check`) and written to ``-o`` (standard
output or a file, atomically: a ``cm://`` destination would be in one of several clusters, and is refused) one node
at a time (:func:`chunks`), byte for byte the text :func:`~kubectl_aicr.snapshot_io.dumps` gives for the whole
document (:func:`document`). 2 clusters of 500 nodes of 300 KB: peak RSS 0.12 GB (JSON and YAML) where the whole
document took 2.8 GB (JSON) and 5.2 GB (YAML), the same bytes written.

A cluster whose run fails (unreachable, unknown context, forbidden, no matching node, its agent failed) is recorded
in ``failures`` as ``{context, reason}``, as a fleet records a node, and the others are still written. Exit codes
(:mod:`kubectl_aicr.errors`), as a fleet of nodes: 0 when every cluster gave a complete document; 7
(:data:`~kubectl_aicr.errors.AGENT_FAILED`) when some cluster failed, or some node of a cluster's ``--all-nodes``
run did; when every cluster failed, the first one's (in the order given) own code, e.g. 6 for an unreachable
cluster, the document of failures written all the same. Ctrl-C (or SIGTERM) reaches every run, each cleans up
what it created, then the command exits 130.

Progress lines go to stderr, each prefixed with its context; a fleet run's status line is printed, prefixed, every
:data:`STATUS_EVERY` seconds and at its end (several clusters cannot share one line rewritten in place).
"""

from __future__ import annotations

import dataclasses
import re
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Iterator, Sequence, cast

from collector.model import (
    ClusterFailureDoc,
    ClusterItemDoc,
    ClusterSnapshotListDoc,
    cluster_snapshot_list,
    now_rfc3339,
)
from kubectl_aicr import __version__, formats, snapshot_io
from kubectl_aicr.errors import INTERNAL, AgentFailed, AicrError, InvalidInput

if TYPE_CHECKING:
    from kubectl_aicr.deploy.run import RunOptions, RunOutcome
    from kubectl_aicr.fleetdoc import FleetDocument
    from kubectl_aicr.kube import KubeOptions

#: A fleet run's status line is printed at most this often per cluster (and once at its end).
STATUS_EVERY = 10.0
#: How often the main thread wakes while it waits for the runs (so that Ctrl-C is seen at once).
_JOIN_POLL = 0.2

Echo = Callable[[str], None]


def list_contexts(kubeconfig: str | None) -> tuple[str, ...]:
    """Every context of the kubeconfig kubectl would read (``--kubeconfig``, else ``$KUBECONFIG``'s files, else
    ~/.kube/config), in file order, each once (the first file naming a context wins, as kubectl merges them)."""
    from kubectl_aicr.kube import kubeconfig_contexts, kubeconfig_paths

    paths = kubeconfig_paths(kubeconfig)
    names = kubeconfig_contexts(paths)
    if not names:
        raise InvalidInput(f"--all-contexts: the kubeconfig ({', '.join(paths)}) has no contexts")
    return names


def pick_contexts(given: Sequence[str], all_contexts: bool, kubeconfig: str | None) -> tuple[str, ...] | None:
    """The contexts of a multi-cluster run, or None for the single-cluster path (no ``--context`` or one, and no
    ``--all-contexts``). Refuses ``--all-contexts`` beside ``--context``, an empty name and a name given twice."""
    if all_contexts:
        if given:
            raise InvalidInput("--all-contexts captures every context of the kubeconfig: drop --context or it")
        return list_contexts(kubeconfig)
    if len(given) < 2:
        return None
    seen: set[str] = set()
    for name in given:
        if not name:
            raise InvalidInput("--context: must not be empty")
        if name in seen:
            raise InvalidInput(f"--context {name!r} is given twice; name each context once")
        seen.add(name)
    return tuple(given)


def check_flags(dest: snapshot_io.Location, kube: KubeOptions, *, local: bool, dry_run: str) -> None:
    """The flags that mean one cluster, refused before any I/O when several are captured."""
    if local:
        raise InvalidInput("--local collects on this machine: drop it, or drop the extra --context/--all-contexts")
    if dry_run != "none":
        raise InvalidInput(f"--dry-run={dry_run} prints one cluster's manifests: give one --context")
    if isinstance(dest, snapshot_io.ConfigMapRef):
        raise InvalidInput(
            f"-o {dest}: with several contexts the ConfigMap would be in one of several clusters; "
            "write the ClusterSnapshotList to a file or '-'"
        )
    for flag, value in (("--cluster", kube.cluster), ("--user", kube.user)):
        if value is not None:
            raise InvalidInput(f"{flag} replaces one context's kubeconfig entry: with several contexts, drop it")


@dataclass
class ClusterResult:
    """One context's run: its document (as delivered) and outcome, or the error that ended it. A one-node run's
    Snapshot is ``document``; an ``--all-nodes`` run's SnapshotList is ``fleet``, its nodes kept compressed, checked
    (:meth:`~kubectl_aicr.fleetdoc.FleetDocument.check`), with the list's metadata, to be written one node at a time
    (:func:`chunks`)."""

    context: str
    document: dict[str, Any] | None = None
    outcome: RunOutcome | None = None
    error: BaseException | None = None
    fleet: tuple[FleetDocument, dict[str, str]] | None = None

    @property
    def delivered(self) -> bool:
        """The run ended well and handed over its document."""
        return self.error is None and (self.document is not None or self.fleet is not None)

    @property
    def reason(self) -> str:
        err = self.error
        if isinstance(err, AicrError):
            return err.message
        if isinstance(err, KeyboardInterrupt):
            return "interrupted"
        return f"internal error: {type(err).__name__}: {err}"


class _Lines:
    """stderr lines of all the runs, one whole line at a time, each prefixed with its context."""

    def __init__(self, echo: Echo, clock: Callable[[], float] = time.monotonic) -> None:
        self.echo, self.clock = echo, clock
        self.lock = threading.Lock()
        self.status_at: dict[str, float] = {}

    def progress(self, context: str) -> Callable[[str], None]:
        def say(msg: str) -> None:
            with self.lock:
                self.echo(f"[aicr] {context}: {msg}")

        return say

    def status(self, context: str) -> Callable[[str, bool], None]:
        def show(line: str, final: bool) -> None:
            now = self.clock()
            with self.lock:
                if final or now - self.status_at.get(context, -STATUS_EVERY) >= STATUS_EVERY:
                    self.status_at[context] = now
                    self.echo(f"[aicr] {context}: {line}")

        return show


def _run_one(
    result: ClusterResult,
    kube_opts: KubeOptions,
    run_options: RunOptions,
    lines: _Lines,
    *,
    api_version: str,
    rate: tuple[float, int],
    started_at: float,
) -> None:
    """One context's whole run, in its own thread; whatever ends it is kept in ``result``, never raised."""
    from kubectl_aicr.deploy import run as agent_run
    from kubectl_aicr.kube import TokenBucket, connect
    from kubectl_aicr.schema import validate

    ctx = result.context
    progress = lines.progress(ctx)
    try:
        kube = connect(dataclasses.replace(kube_opts, context=ctx))
    except BaseException as e:  # noqa: BLE001 - recorded as this cluster's failure
        result.error = e
        return
    if rate[0] > 0:
        kube.limiter = TokenBucket(rate[0], rate[1])

    def deliver(doc: dict[str, Any]) -> str:
        if api_version != formats.detect(doc):
            doc = validate(formats.convert(doc, api_version), source=f"snapshot of context {ctx} as {api_version}")
        result.document = doc
        return "the ClusterSnapshotList"

    def keep(fleet: FleetDocument, meta: dict[str, str]) -> str:
        fleet.check(meta)  # what validating the whole SnapshotList (converted, when it is) raises
        result.fleet = (fleet, meta)
        return "the ClusterSnapshotList"

    try:
        planned = agent_run.plan(kube, run_options, progress, started_at=started_at, status=lines.status(ctx))
        streamed = agent_run.FleetDelivery(api_version=api_version, write=keep)
        result.outcome = agent_run.execute(planned, progress, deliver, fleet_delivery=streamed)
    except BaseException as e:  # noqa: BLE001 - KeyboardInterrupt included: the main thread re-raises it
        result.error = e
    finally:
        kube.close()


def _interrupt(threads: Sequence[threading.Thread]) -> None:
    """Raise KeyboardInterrupt in each run still going, as Ctrl-C does in a single-cluster run: each one's cleanup
    (``finally``) then removes what it created."""
    import ctypes

    for t in threads:
        if t.is_alive() and t.ident is not None:
            ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(t.ident), ctypes.py_object(KeyboardInterrupt))


def capture(
    contexts: Sequence[str],
    kube: KubeOptions,
    run_options: RunOptions,
    *,
    api_version: str = formats.DEFAULT_WRITE,
    rate: tuple[float, int] = (0.0, 1),
    started_at: float | None = None,
    echo: Echo | None = None,
) -> list[ClusterResult]:
    """Run every context at once and return each context's result (in the order given): :func:`write` writes them.
    ``rate``: (--qps, --burst), a limit per cluster. ``echo``: where the progress lines go (default: stderr).
    KeyboardInterrupt, once every run has cleaned up, is raised again."""
    if echo is None:
        import click

        def echo(line: str) -> None:
            click.echo(line, err=True)

    lines = _Lines(echo)
    t0 = time.monotonic() if started_at is None else started_at
    results = [ClusterResult(ctx) for ctx in contexts]
    threads = [
        threading.Thread(
            target=_run_one,
            args=(r, kube, run_options, lines),
            kwargs={"api_version": api_version, "rate": rate, "started_at": t0},
            name=f"aicr-context-{r.context}",
            daemon=True,
        )
        for r in results
    ]
    for t in threads:
        t.start()
    interrupted = False
    while any(t.is_alive() for t in threads):
        try:
            for t in threads:
                while t.is_alive():
                    t.join(_JOIN_POLL)
        except KeyboardInterrupt:
            if not interrupted:
                interrupted = True
                echo(f"[aicr] interrupted: stopping the runs of {len(contexts)} contexts, each cleans up first")
                _interrupt(threads)
    if interrupted or any(isinstance(r.error, KeyboardInterrupt) for r in results):
        raise KeyboardInterrupt
    return results


def metadata(results: Sequence[ClusterResult]) -> dict[str, str]:
    """The ClusterSnapshotList's metadata: when it was written, by which version, of how many contexts."""
    return {"timestamp": now_rfc3339(), "version": __version__, "context-count": str(len(results))}


def _frame(
    results: Sequence[ClusterResult], meta: dict[str, str], api_version: str, fleet_item: Callable[[int], Any]
) -> ClusterSnapshotListDoc:
    """The ClusterSnapshotList with each one-node run's Snapshot as it is and ``fleet_item(i)`` standing for the
    SnapshotList of ``results[i]``."""
    items: list[ClusterItemDoc] = []
    failures: list[ClusterFailureDoc] = []
    for i, r in enumerate(results):
        if not r.delivered:
            failures.append({"context": r.context, "reason": r.reason})
        elif r.fleet is not None:
            items.append({"context": r.context, "snapshot": fleet_item(i)})
        else:
            items.append({"context": r.context, "snapshot": cast(Any, r.document)})
    return cluster_snapshot_list(items, meta, failures=failures, api_version=api_version)


def document(
    results: Sequence[ClusterResult],
    *,
    api_version: str = formats.DEFAULT_WRITE,
    meta: dict[str, str] | None = None,
) -> ClusterSnapshotListDoc:
    """The ClusterSnapshotList of the runs (items and failures in the order given), checked against the schema, whole
    in memory (every node of every fleet parsed): for tests and small documents; :func:`write` streams it."""
    from kubectl_aicr.schema import validate

    meta = meta if meta is not None else metadata(results)
    check(results, meta, api_version=api_version)
    doc = _frame(results, meta, api_version, lambda i: _whole_fleet(results[i]))
    validate(doc, source="multi-cluster snapshot")
    return doc


def _whole_fleet(r: ClusterResult) -> dict[str, Any]:
    """A fleet run's SnapshotList whole, every node parsed."""
    assert r.fleet is not None
    fleet, meta = r.fleet
    return fleet.document(meta)


def check(results: Sequence[ClusterResult], meta: dict[str, str], *, api_version: str = formats.DEFAULT_WRITE) -> None:
    """Raise what validating the whole ClusterSnapshotList raises, without it whole: each one-node Snapshot is
    checked, and the list with every fleet's SnapshotList (already checked whole when it was delivered, in this
    apiVersion: :meth:`~kubectl_aicr.fleetdoc.FleetDocument.check`) replaced by an empty one of its apiVersion, which
    is valid where it is exactly when the fleet's is."""
    from kubectl_aicr.schema import validate

    for r in results:
        if r.delivered and r.fleet is None:
            validate(r.document, source=f"context {r.context}")
    validate(
        _frame(results, meta, api_version, lambda i: {"kind": "SnapshotList", "apiVersion": api_version, "items": []}),
        source="multi-cluster snapshot",
    )


#: fastyaml.dump's line width: PyYAML and libyaml split a long scalar at a space past this column.
_YAML_WIDTH = 1 << 16
_BREAKS = "\n\x85\u2028\u2029"  # what both YAML emitters write as a line break (inside single quotes too)
_SPLIT_LINES = re.compile(f"[{_BREAKS}]")
_LINE_STARTS = re.compile(f"(?<=[{_BREAKS}])(?=[^{_BREAKS}])")


def _marker(results: Sequence[ClusterResult], meta: dict[str, str]) -> str:
    """A plain string found nowhere in the frame (contexts, metadata, reasons, one-node snapshots)."""
    text = repr((meta, [(r.context, r.reason if not r.delivered else "", r.document) for r in results]))
    n = 0
    while f"aicr-cluster-{n}-" in text:
        n += 1
    return f"aicr-cluster-{n}-"


def chunks(
    results: Sequence[ClusterResult], fmt: str, meta: dict[str, str], *, api_version: str = formats.DEFAULT_WRITE
) -> Iterator[str]:
    """The text :func:`kubectl_aicr.snapshot_io.dumps` gives for :func:`document`, in pieces: the frame (one-node
    Snapshots included) and each fleet's SnapshotList one node at a time
    (:meth:`~kubectl_aicr.fleetdoc.FleetDocument.chunks`), re-indented to where it sits in the list (JSON: every line
    break followed by the indentation of its ``"snapshot":`` line; YAML: every line that is not empty indented as
    the emitter indents it there, a chunk with a line too long for that (which the emitter would split at another
    column) emitted in place instead). Holds one node parsed at a time. Call :func:`check` first."""
    from kubectl_aicr.snapshot_io import dumps

    mark = _marker(results, meta)
    frame = dumps(cast(dict[str, Any], _frame(results, meta, api_version, lambda i: f"{mark}{i}")), fmt)
    at = 0
    for i, r in enumerate(results):
        if not r.delivered or r.fleet is None:
            continue
        fleet, fleet_meta = r.fleet
        if fmt == "json":
            token = f'"{mark}{i}"'
            pos = frame.index(token, at)
            line = frame[frame.rindex("\n", 0, pos) + 1 : pos]
            yield frame[at:pos]
            yield from _json_nested(fleet.chunks(fmt, fleet_meta), line[: len(line) - len(line.lstrip(" "))])
            at = pos + len(token)
        else:
            token = f" {mark}{i}\n"
            pos = frame.index(token, at)
            line = frame[frame.rindex("\n", 0, pos) + 1 : pos]
            if line.strip() != "snapshot:":  # pragma: no cover - the emitter always writes the item this way
                raise AssertionError(f"unexpected YAML layout: {line!r}")
            yield frame[at:pos] + "\n"
            yield from _yaml_nested(fleet.chunks(fmt, fleet_meta), line[: len(line) - len(line.lstrip(" "))] + "  ")
            at = pos + len(token)
    yield frame[at:]


def _json_nested(pieces: Iterator[str], indent: str) -> Iterator[str]:
    """A JSON document's text as the value of a key on a line indented by ``indent`` (its final newline dropped)."""
    pending: str | None = None
    for piece in pieces:
        if pending:
            yield pending.replace("\n", "\n" + indent)
        pending = piece
    if pending is not None:
        if not pending.endswith("\n"):  # pragma: no cover - snapshot_io.dumps ends every JSON text with one
            raise AssertionError("a JSON text without its final newline")
        yield pending[:-1].replace("\n", "\n" + indent)


def _yaml_nested(pieces: Iterator[str], prefix: str) -> Iterator[str]:
    """A YAML block mapping's text (a top-level document) as the block mapping it is at indentation ``prefix``."""
    at_start = True  # the next piece starts a line
    carry = 0  # the length of the line the last piece left unfinished
    limit = _YAML_WIDTH - len(prefix)
    for piece in pieces:
        if not piece:
            continue
        lengths = [len(x) for x in _SPLIT_LINES.split(piece)]
        lengths[0] += carry
        if max(lengths) > limit:
            if not at_start or piece[-1] not in _BREAKS:  # pragma: no cover - fleetdoc yields whole lines in YAML
                raise AssertionError("a YAML piece that is not whole lines")
            yield _yaml_in_place(piece, prefix)
            continue
        text = _LINE_STARTS.sub(prefix, piece)
        yield prefix + text if at_start and piece[0] not in _BREAKS else text
        at_start = piece[-1] in _BREAKS
        carry = 0 if at_start else lengths[-1]


def _yaml_in_place(piece: str, prefix: str) -> str:
    """Whole lines of a top-level SnapshotList's YAML (entries of its mapping, or items of its ``items``) emitted
    as they are inside a ClusterSnapshotList's item (indentation ``prefix``), by the emitter itself: parsed and dumped
    in that place."""
    from kubectl_aicr import fastyaml

    if prefix != "    ":  # pragma: no cover - where every ClusterSnapshotList item's snapshot is
        raise AssertionError(f"unexpected indentation {prefix!r}")
    head = "items:\n- context: c\n  snapshot:\n"
    if piece.startswith("- "):
        (parsed,) = fastyaml.load_all("items:\n" + piece)
        text = fastyaml.dump({"items": [{"context": "c", "snapshot": {"items": parsed["items"]}}]})
        head += "    items:\n"
        tail = ""
    else:
        (parsed,) = fastyaml.load_all(piece)
        open_items = piece == "items:\n" or piece.endswith("\nitems:\n")
        if open_items:  # the frame's head: its items follow
            parsed["items"] = ["m"]
        text = fastyaml.dump({"items": [{"context": "c", "snapshot": parsed}]})
        tail = "    - m\n" if open_items else ""
    if not text.startswith(head) or not text.endswith(tail):  # pragma: no cover - the emitter's block layout
        raise AssertionError(f"unexpected YAML layout: {text[:80]!r}")
    return text[len(head) : len(text) - len(tail)]


def write(
    results: Sequence[ClusterResult], dest: snapshot_io.Location, fmt: str, *, api_version: str = formats.DEFAULT_WRITE
) -> str:
    """Check (:func:`check`) and write the ClusterSnapshotList of the runs to ``dest`` in ``fmt``, one node of a fleet
    at a time (:func:`chunks`; a file atomically). Returns where it went."""
    if fmt not in snapshot_io.FORMATS:
        snapshot_io.dumps({}, fmt)  # its error for an unknown format, before anything is written
    meta = metadata(results)
    check(results, meta, api_version=api_version)
    return snapshot_io.save_text(chunks(results, fmt, meta, api_version=api_version), dest, fmt)


def raise_for_failures(results: Sequence[ClusterResult]) -> None:
    """After the document was written: exit 7 when some cluster (or some node of one) gave nothing; when every
    cluster failed, the first one's error, under its own exit code."""
    failed = [r for r in results if not r.delivered]
    partial = [r for r in results if r.outcome is not None and r.outcome.failures]
    if not failed and not partial:
        return
    details = [f"{r.context}: {r.reason.splitlines()[0] if r.reason else 'failed'}" for r in failed]
    details += [
        f"{r.context}: {len(r.outcome.failures)} of {r.outcome.targets} nodes produced no snapshot"
        for r in partial
        if r.outcome is not None
    ]
    if failed and len(failed) == len(results):
        first = failed[0].error
        err = AicrError(
            f"none of the {len(results)} contexts gave a snapshot; first: {failed[0].context}: {failed[0].reason}",
            hint=first.hint if isinstance(first, AicrError) else None,
            details=details,
        )
        err.exit_code = first.exit_code if isinstance(first, AicrError) else INTERNAL
        raise err
    what = f"{len(failed)} of {len(results)} contexts gave no snapshot" if failed else ""
    if partial:
        nodes = f"{len(partial)} context(s) are missing nodes"
        what = f"{what}; {nodes}" if what else nodes
    raise AgentFailed(
        what,
        details=details,
        hint="the snapshots of the other clusters were written; 'failures' in the output lists these",
    )


def snapshot_clusters(
    contexts: Sequence[str],
    dest: snapshot_io.Location,
    fmt: str,
    kube: KubeOptions,
    run_options: RunOptions,
    *,
    api_version: str,
    rate: tuple[float, int],
    started_at: float,
) -> None:
    """``snapshot`` of several contexts (see the module docstring): capture, write to ``dest``, raise for failures."""
    import click

    results = capture(contexts, kube, run_options, api_version=api_version, rate=rate, started_at=started_at)
    where = write(results, dest, fmt, api_version=api_version)
    ok = sum(1 for r in results if r.delivered)
    click.echo(f"[aicr] snapshots of {ok} of {len(contexts)} contexts written to {where}", err=True)
    raise_for_failures(results)
