"""State of selected systemd units on the host (measurement type ``SystemD``), via ``systemctl show``.

One subtype per unit, named by the unit (``containerd.service``), in the order asked for. Keys are systemd's own
property names (as the original, which read them over D-Bus), limited to the curated :data:`PROPERTIES`:
identity-free, stable configuration and state. Left out on purpose: PIDs, timestamps, memory/CPU/IO/task counters,
invocation IDs (volatile), and ``Environment``/``EnvironmentFiles``/``ExecStart`` arguments (may carry secrets).
``ExecStart`` is reduced to the executable path(s) (comma-separated when the unit has several).

Typing: a whole decimal integer becomes ``int`` (``NRestarts``, ``LimitNOFILE``...; ``infinity`` stays a string);
``yes``/``no`` become ``bool`` for the boolean properties in :data:`BOOL_PROPERTIES` only (``Restart=no`` stays the
string ``"no"``); time spans (``RestartUSec``) always stay strings; empty values are omitted (systemctl versions
differ on printing them). A unit that is not installed keeps only ``LoadState``/``ActiveState``/``SubState``
(the other values would be the manager's defaults).

A unit that is not installed still gets a subtype (``LoadState: not-found``), as with the original.
Without a reachable systemd (no ``systemctl``, or "System has not been booted with systemd" because the pod lacks the
host's ``/run/systemd``, or not root) every unit's subtype has ``status: unavailable`` and the reason; inside the
agent pod, mounting the host's ``/run/systemd`` and running as root lets ``systemctl`` talk to the host's manager
over ``/run/systemd/private``.
"""

from __future__ import annotations

import re
from typing import Sequence

from collector._util import paragraphs, typed
from collector.model import STATUS_ERROR, STATUS_UNAVAILABLE, Measurement, Scalar, Subtype, missing, reading
from collector.runner import (
    CommandError,
    CommandNotFound,
    CommandResult,
    CommandRunner,
    CommandTimeout,
    describe_failure,
)

__all__ = [
    "BOOL_PROPERTIES",
    "DEFAULT_UNITS",
    "NOT_FOUND_PROPERTIES",
    "PROPERTIES",
    "collect_systemd",
    "parse_systemctl_show",
    "unit_data",
]

SOURCE = "systemctl show"

#: Units collected by default: the original's three, CRI-O, and the NVIDIA host services that matter on GPU nodes.
DEFAULT_UNITS: tuple[str, ...] = (
    "containerd.service",
    "docker.service",
    "kubelet.service",
    "crio.service",
    "nvidia-persistenced.service",
    "nvidia-fabricmanager.service",
    "nvidia-imex.service",
)

#: Properties asked for (``--property=``). ``Id`` is used to match output blocks to units and then dropped.
PROPERTIES: tuple[str, ...] = (
    "Id",
    "LoadState",
    "ActiveState",
    "SubState",
    "Result",
    "UnitFileState",
    "UnitFilePreset",
    "FragmentPath",
    "DropInPaths",
    "NeedDaemonReload",
    "Type",
    "Restart",
    "RestartUSec",
    "NRestarts",
    "ExecStart",
    "Slice",
    "Delegate",
    "KillMode",
    "OOMScoreAdjust",
    "TasksMax",
    "LimitNOFILE",
    "LimitNOFILESoft",
    "LimitMEMLOCK",
    "LimitNPROC",
    "LimitCORE",
)

BOOL_PROPERTIES = frozenset({"NeedDaemonReload", "Delegate", "RemainAfterExit"})

#: Time spans print as ``100ms``/``1min 30s`` but a zero span as ``0``: always keep them strings, so a key never
#: changes type between units or snapshots.
STRING_PROPERTIES = frozenset({"RestartUSec"})

#: For a unit that is not installed (``LoadState=not-found``) only these are kept: the rest are the manager's
#: defaults (limits, restart policy...), which say nothing about the unit.
NOT_FOUND_PROPERTIES = ("LoadState", "ActiveState", "SubState", "UnitFileState")

_UNIT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9:_.@\\-]*\.[a-z]+")
_NO_MANAGER = (
    "not been booted with systemd",
    "failed to connect to bus",
    "failed to get d-bus connection",
    "no such file or directory",
    "access denied",
    "permission denied",
    "host is down",
)


def parse_systemctl_show(text: str) -> list[dict[str, list[str]]]:
    """``systemctl show`` output -> one ``{property: [values...]}`` per unit block (blocks are blank-line separated).

    A property may repeat (``ExecStart`` once per command), hence the lists.
    """
    blocks: list[dict[str, list[str]]] = []
    for lines in paragraphs(text):
        cur: dict[str, list[str]] = {}
        for line in lines:
            key, sep, value = line.partition("=")
            if not sep or not key or " " in key:
                continue
            cur.setdefault(key, []).append(value)
        if cur:
            blocks.append(cur)
    return blocks


def _exec_paths(values: Sequence[str]) -> str | None:
    paths = [m.group(1) for v in values for m in re.finditer(r"\bpath=([^ ;]+)", v)]
    return ",".join(paths) if paths else None


def unit_data(props: dict[str, list[str]]) -> dict[str, Scalar]:
    """Typed, filtered data for one unit block."""
    data: dict[str, Scalar] = {}
    for key, values in props.items():
        if key not in PROPERTIES or key == "Id":
            continue
        if key == "ExecStart":
            path = _exec_paths(values)
            if path:
                data[key] = path
            continue
        value = values[-1].strip()
        if value == "":
            continue
        if key in BOOL_PROPERTIES and value in ("yes", "no"):
            data[key] = value == "yes"
        elif key in STRING_PROPERTIES:
            data[key] = value
        else:
            data[key] = typed(value)
    if data.get("LoadState") == "not-found":
        data = {k: v for k, v in data.items() if k in NOT_FOUND_PROPERTIES}
    return data


def _argv(systemctl: str, units: Sequence[str]) -> list[str]:
    return [systemctl, "show", "--no-pager", "--property=" + ",".join(PROPERTIES), "--", *units]


def _manager_missing(result: CommandResult) -> bool:
    text = (result.stderr + "\n" + result.stdout).lower()
    return any(s in text for s in _NO_MANAGER)


def _every_unit_missing(units: Sequence[str], *, status: str, reason: str) -> list[Subtype]:
    return [missing(u, source=f"{SOURCE} {u}", status=status, reason=reason) for u in units]


def _match_blocks(units: Sequence[str], blocks: list[dict[str, list[str]]]) -> dict[str, dict[str, list[str]]]:
    """Blocks come back in argument order; prefer matching by ``Id`` (aliases resolve to another Id)."""
    out: dict[str, dict[str, list[str]]] = {}
    by_id = {b["Id"][-1]: b for b in blocks if b.get("Id")}
    for u in units:
        if u in by_id:
            out[u] = by_id[u]
    if len(blocks) == len(units):
        for u, b in zip(units, blocks):
            out.setdefault(u, b)
    return out


def _run(runner: CommandRunner, argv: list[str], timeout: float) -> CommandResult | Subtype:
    """The result, or a reason packed in a dummy subtype (status/reason) when there is no usable result."""
    try:
        return runner(argv, timeout)
    except CommandNotFound:
        return missing("", source=SOURCE, reason=f"{argv[0]} not found (systemd tools not installed here)")
    except CommandTimeout as e:
        return missing("", source=SOURCE, status=STATUS_ERROR, reason=f"systemctl timed out after {e.timeout:g}s")
    except CommandError as e:
        return missing("", source=SOURCE, status=STATUS_ERROR, reason=e.message)


def collect_systemd(
    runner: CommandRunner,
    units: Sequence[str] = DEFAULT_UNITS,
    *,
    systemctl: str = "systemctl",
    timeout: float = 10.0,
) -> Measurement:
    """One ``systemctl show`` for all units (falls back to one call per unit if that fails). Never raises."""
    units = list(dict.fromkeys(units))  # de-duplicate, keep order
    valid = [u for u in units if _UNIT_NAME.fullmatch(u)]
    invalid = {u for u in units if u not in valid}
    results: dict[str, Subtype] = {
        u: missing(u, source=f"{SOURCE} {u}", status=STATUS_ERROR, reason="invalid unit name") for u in invalid
    }
    if valid:
        results.update(_collect_valid(runner, valid, systemctl, timeout))
    return Measurement("SystemD", [results[u] for u in units])


def _collect_valid(runner: CommandRunner, units: list[str], systemctl: str, timeout: float) -> dict[str, Subtype]:
    answer = _run(runner, _argv(systemctl, units), timeout)
    if isinstance(answer, Subtype):
        failed = _every_unit_missing(units, status=answer.context["status"], reason=answer.context["reason"])
        return {s.name: s for s in failed}
    if answer.returncode != 0:
        if _manager_missing(answer):
            reason = (
                f"no systemd manager reachable ({describe_failure(answer, 200)}); in a pod, mount the host's "
                "/run/systemd and run as root"
            )
            return {s.name: s for s in _every_unit_missing(units, status=STATUS_UNAVAILABLE, reason=reason)}
        if len(units) > 1:
            out: dict[str, Subtype] = {}
            for u in units:  # one bad unit must not hide the others
                out.update(_collect_valid(runner, [u], systemctl, timeout))
            return out
        unit = units[0]
        return {unit: missing(unit, source=f"{SOURCE} {unit}", status=STATUS_ERROR, reason=describe_failure(answer))}
    matched = _match_blocks(units, parse_systemctl_show(answer.stdout))
    out = {}
    for u in units:
        if u in matched:
            out[u] = reading(u, unit_data(matched[u]), source=f"{SOURCE} {u}")
        else:
            out[u] = missing(
                u, source=f"{SOURCE} {u}", status=STATUS_ERROR, reason="unit missing from systemctl output"
            )
    return out
