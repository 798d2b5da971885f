"""Small pure helpers shared by the host collectors (not public API)."""

from __future__ import annotations

import os
import re

from collector.model import Scalar

#: Largest file any collector reads; /proc and /sys files are far smaller (the original used the same bound).
MAX_FILE_BYTES = 1 << 20

_INT_RE = re.compile(r"-?(?:0|[1-9][0-9]*)")
_FLOAT_RE = re.compile(r"-?(?:0|[1-9][0-9]*)\.[0-9]+")
_KEBAB_SUB = re.compile(r"[^a-z0-9]+")

#: Text that means "this source has no value for that field". Parsed to ``None``.
NA_TOKENS = frozenset(
    {
        "n/a",
        "[n/a]",
        "not supported",
        "[not supported]",
        "not available",
        "unknown",
        "[unknown error]",
        "unknown error",
        "requested functionality has been deprecated",
        "insufficient permissions",
        "[insufficient permissions]",
    }
)


def is_na(text: str | None) -> bool:
    return text is not None and text.strip().lower() in NA_TOKENS


def collapse_ws(text: str) -> str:
    """Trim and collapse runs of whitespace (tabs, newlines) into single spaces."""
    return " ".join(text.split())


def as_int(text: str | None) -> int | None:
    """``int`` when the whole (trimmed) text is a decimal integer, else ``None``."""
    if text is None:
        return None
    t = text.strip()
    return int(t) if _INT_RE.fullmatch(t) else None


def typed(text: str) -> Scalar:
    """A file or command value with its real type: a whole decimal integer becomes ``int``,
    anything else stays ``str``."""
    t = text.strip()
    if _INT_RE.fullmatch(t):
        return int(t)
    return t


def typed_number(text: str) -> int | float | str:
    """Like :func:`typed` but also turns a plain decimal fraction into ``float``."""
    t = text.strip()
    if _INT_RE.fullmatch(t):
        return int(t)
    if _FLOAT_RE.fullmatch(t):
        return float(t)
    return t


def kebab(name: str) -> str:
    """``"Bus Type"`` / ``"product_name"`` / ``"GPU UUID"`` -> ``"bus-type"`` / ``"product-name"`` / ``"gpu-uuid"``."""
    return _KEBAB_SUB.sub("-", name.strip().lower()).strip("-")


def read_text(path: str, max_bytes: int = MAX_FILE_BYTES) -> str:
    """Read a (small) text file, bounded; invalid UTF-8 bytes are replaced. Raises ``OSError``."""
    with open(path, "rb") as fh:
        data = fh.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise OSError(f"{path}: larger than {max_bytes} bytes")
    return data.decode("utf-8", errors="replace")


def try_read(path: str, max_bytes: int = MAX_FILE_BYTES) -> str | None:
    """:func:`read_text`, or ``None`` when the file cannot be read for any reason."""
    try:
        return read_text(path, max_bytes)
    except (OSError, ValueError):
        return None


def try_read_line(path: str) -> str | None:
    """First line of a small file, trimmed; ``None`` when unreadable."""
    text = try_read(path, 64 * 1024)
    if text is None:
        return None
    return text.strip().split("\n", 1)[0].strip()


def join(root: str, *parts: str) -> str:
    """Join absolute-looking ``parts`` under ``root`` (``join("/host/proc", "/cmdline")`` -> ``/host/proc/cmdline``)."""
    return os.path.join(root, *(p.lstrip("/") for p in parts))


def short_error(err: BaseException) -> str:
    if isinstance(err, OSError) and err.strerror:
        return f"{err.filename}: {err.strerror}" if err.filename else err.strerror
    return str(err) or type(err).__name__


def normalize_bus_id(bus_id: str) -> str:
    """PCI address in sysfs form: lower-case, 4-digit domain (``00000000:0B:00.0`` -> ``0000:0b:00.0``)."""
    b = bus_id.strip().lower()
    m = re.fullmatch(r"([0-9a-f]+):([0-9a-f]{1,2}):([0-9a-f]{1,2})\.([0-7])", b)
    if not m:
        return b
    dom, bus, dev, fn = m.groups()
    return f"{int(dom, 16):04x}:{int(bus, 16):02x}:{int(dev, 16):02x}.{fn}"


def paragraphs(text: str) -> list[list[str]]:
    """Blank-line separated blocks of non-blank lines (``/proc/cpuinfo``, ``systemctl show`` of several units)."""
    blocks: list[list[str]] = []
    cur: list[str] = []
    for line in text.splitlines():
        if line.strip():
            cur.append(line)
        elif cur:
            blocks.append(cur)
            cur = []
    if cur:
        blocks.append(cur)
    return blocks


def colon_pairs(lines: str | list[str]) -> list[tuple[str, str]]:
    """``Name: value`` lines -> ``[(name, value)]`` stripped, split at the first colon; other lines are skipped."""
    out: list[tuple[str, str]] = []
    for line in lines.splitlines() if isinstance(lines, str) else lines:
        name, sep, value = line.partition(":")
        if sep:
            out.append((name.strip(), value.strip()))
    return out
