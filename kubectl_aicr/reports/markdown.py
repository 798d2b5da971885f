"""Markdown that fits where it is posted: a GitHub step summary (1 MiB) or a pull-request comment (64 KB).

:class:`Budget` builds a report section by section and table row by table row, never past its byte limit, and
ends with a note that counts what was left out; :func:`cap` does the same for any finished markdown text (cut at
a line, never between a table's header and its separator), so a table is never broken.
"""

from __future__ import annotations

from typing import Sequence

#: Room kept for the closing note(s) that say what was left out.
_RESERVE = 600
MAX_CELL = 300


def cell(text: str) -> str:
    """A table cell: one line, pipes escaped, bounded length."""
    from kubectl_aicr.errors import safe_text

    text = safe_text(text.replace("\r\n", "⏎").replace("\n", "⏎").replace("\r", "⏎"))
    if len(text) > MAX_CELL:
        text = text[: MAX_CELL - 1] + "…"
    return text.replace("\\", "\\\\").replace("|", "\\|")


def code_span(text: str) -> str:
    """``text`` as a GitHub-flavoured markdown code span that is safe inside a table cell."""
    if not text:
        return "*(empty)*"
    from kubectl_aicr.errors import safe_text

    text = safe_text(text.replace("\r\n", "\n").replace("\n", "⏎").replace("\r", "⏎"))
    longest = run = 0
    for ch in text:
        run = run + 1 if ch == "`" else 0
        longest = max(longest, run)
    fence = "`" * (longest + 1)
    pad = " " if text.startswith(("`", " ")) or text.endswith(("`", " ")) else ""
    return f"{fence}{pad}{text.replace('|', chr(92) + '|')}{pad}{fence}"


def code(text: str) -> str:
    """A code span inside a table cell (pipes escaped; backticks in the text get a longer fence), at most
    :data:`MAX_CELL` characters."""
    text = text if len(text) <= MAX_CELL else text[: MAX_CELL - 1] + "…"
    return code_span(text)


def row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def header(cols: Sequence[str]) -> list[str]:
    return [row(cols), "|" + "---|" * len(cols)]


def _size(line: str) -> int:
    return len(line.encode("utf-8")) + 1


class Budget:
    """Lines added while they fit in ``limit`` bytes (minus room for the closing notes)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.lines: list[str] = []
        self.size = 0
        self.left_out: list[str] = []

    def room(self, lines: Sequence[str]) -> bool:
        return self.size + sum(_size(x) for x in lines) <= self.limit - _RESERVE

    def add(self, *lines: str) -> bool:
        if not self.room(lines):
            return False
        self.lines.extend(lines)
        self.size += sum(_size(x) for x in lines)
        return True

    def table(self, title: Sequence[str], cols: Sequence[str], rows: Sequence[str], what: str) -> None:
        """A section with its table; rows that do not fit are counted in the closing note."""
        if not rows:
            return
        if not self.add(*title, *header(cols), rows[0]):
            self.left_out.append(f"{len(rows):,} {what}")
            return
        shown = 1
        for r in rows[1:]:
            if not self.add(r):
                break
            shown += 1
        if shown < len(rows):
            self.left_out.append(f"{len(rows) - shown:,} more {what}")

    def text(self, how: str = "run with `-o json` for the full report") -> str:
        out = list(self.lines)
        if self.left_out:
            out += ["", f"*Left out to fit {self.limit:,} bytes: {', '.join(self.left_out)}; {how}.*"]
        text = "\n".join(out) + "\n"
        assert len(text.encode("utf-8")) <= self.limit
        return text


def _is_row(line: str) -> bool:
    return line.startswith("|")


def _is_separator(line: str) -> bool:
    return line.startswith("|") and set(line.replace(" ", "")) <= set("|-:")


def cap(text: str, limit: int, how: str = "run with `-o json` for the full report") -> str:
    """``text`` when it fits in ``limit`` bytes; else its first lines that fit, never ending between a table's header
    and separator, and a note counting the table rows and other lines left out."""
    if len(text.encode("utf-8")) <= limit:
        return text
    lines = text.split("\n")
    kept: list[str] = []
    size = 0
    for line in lines:
        if size + _size(line) > limit - _RESERVE:
            break
        kept.append(line)
        size += _size(line)
    if kept and len(kept) < len(lines) and _is_separator(lines[len(kept)]):
        kept.pop()  # a table header whose separator did not fit
    if kept and _is_separator(kept[-1]):
        del kept[-2:]  # a header and separator without any row
    rest = lines[len(kept) :]
    rows = sum(
        1
        for i, x in enumerate(rest)
        if _is_row(x) and not _is_separator(x) and not (i + 1 < len(rest) and _is_separator(rest[i + 1]))
    )
    other = sum(1 for x in rest if x.strip() and not _is_row(x))
    note = f"*… truncated to fit {limit:,} bytes: {rows:,} more table rows and {other:,} more lines not shown; {how}.*"
    return "\n".join(kept).rstrip("\n") + "\n\n" + note + "\n"
