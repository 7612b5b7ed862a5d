"""Text layout of the fake array's output: sizes, tables, key/value blocks, hard wrap.

Everything here is a pure function from values to lines (no CR/LF); the shell joins
lines with CRLF.  Widths and shapes follow equallogic-cli.md §5: tables wrap a long
cell inside its own column (continuation = two spaces then the next width-2
characters), key/value blocks are ``Key: value`` (``Key:`` alone when empty) and,
with ``formatoutput on``, two per line.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["format_size", "hard_wrap", "kv_lines", "parse_size", "table"]

_UNITS = {"": 1, "M": 1, "MB": 1, "G": 1024, "GB": 1024, "T": 1024 * 1024, "TB": 1024 * 1024}
# Half of an 80-column screen: the column of the right-hand pair with formatoutput on.
_PAIR_COLUMN = 40


def parse_size(text: str) -> int | None:
    """``100`` (MB), ``100MB``, ``2G``, ``1.5TB`` → MB; ``None`` when not a size."""
    upper = text.upper()
    i = 0
    while i < len(upper) and (upper[i].isdigit() or upper[i] == "."):
        i += 1
    number, unit = upper[:i], upper[i:]
    if not number or unit not in _UNITS or number.count(".") > 1 or number == ".":
        return None
    mb = float(number) * _UNITS[unit]
    return int(-(-mb // 1))


def format_size(mb: int, *, in_mb: bool = False) -> str:
    """``0MB``, ``100MB``, ``1GB``, ``1.01GB``, ``9.46TB``: decimals only when needed."""
    if in_mb or mb < 1024:
        return f"{mb}MB"
    if mb < 1024 * 1024:
        value, unit = mb / 1024, "GB"
    else:
        value, unit = mb / (1024 * 1024), "TB"
    text = f"{value:.2f}".rstrip("0").rstrip(".")
    return f"{text}{unit}"


def table(
    headers: Sequence[str], widths: Sequence[int], rows: Sequence[Sequence[str]]
) -> list[str]:
    """A fixed-width table with a ``---`` underline row and in-column wrapping."""
    lines = [_row(headers, widths).rstrip()]
    lines.append(" ".join("-" * w for w in widths))
    for row in rows:
        pieces = [_cell_pieces(cell, w) for cell, w in zip(row, widths, strict=True)]
        depth = max(len(p) for p in pieces)
        for k in range(depth):
            lines.append(_row([p[k] if k < len(p) else "" for p in pieces], widths).rstrip())
    return lines


def _cell_pieces(cell: str, width: int) -> list[str]:
    if len(cell) <= width:
        return [cell]
    pieces = [cell[:width]]
    rest = cell[width:]
    step = max(width - 2, 1)
    while rest:
        pieces.append("  " + rest[:step])
        rest = rest[step:]
    return pieces


def _row(cells: Sequence[str], widths: Sequence[int]) -> str:
    return " ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True))


def kv_lines(pairs: Sequence[tuple[str, str]], *, two_per_line: bool) -> list[str]:
    """``Key: value`` lines; with ``two_per_line`` two pairs share a line when they fit."""
    cells = [f"{k}: {v}" if v else f"{k}:" for k, v in pairs]
    if not two_per_line:
        return cells
    out: list[str] = []
    i = 0
    while i < len(cells):
        left = cells[i]
        right = cells[i + 1] if i + 1 < len(cells) else None
        # At least two blanks between the pairs, so a reader can tell where the left
        # value ends (one blank also occurs inside values such as descriptions).
        if right is not None and len(left) <= _PAIR_COLUMN - 2 and len(right) < _PAIR_COLUMN:
            out.append(left.ljust(_PAIR_COLUMN) + right)
            i += 2
        else:
            out.append(left)
            i += 1
    return out


def hard_wrap(line: str, width: int | None) -> list[str]:
    """Cut ``line`` every ``width`` characters (the array's hard wrap); None: no wrap."""
    if width is None or width <= 0 or len(line) <= width:
        return [line]
    return [line[i : i + width] for i in range(0, len(line), width)]
