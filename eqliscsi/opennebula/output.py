"""What oned reads back: stdout per action and the failure text per version.

Reference §6.1 and §6.4:

* Only the first stdout line counts, except for monitor (``KEY=VALUE`` lines).  cp
  prints ``SOURCE`` (4.4-5.12; they read the first token) or ``SOURCE FORMAT``
  (6.0+, mandatory); mkfs prints only the SOURCE (6.x takes the whole line); clone
  prints the SOURCE; stat prints an integer size in MB.
* A failure is any non-zero exit.  Its reason is taken from stderr:

  - 4.4 … 6.0: the text between ``ERROR MESSAGE --8<------`` and
    ``ERROR MESSAGE ------>8--``; a newline inside breaks the protocol.
  - 6.2 … 6.10: the *whole* stderr, newlines turned into spaces; so on failure we
    write nothing but the message (log lines go to the log file instead).
  - 7.0+: stderr lines not matching ``^(ERROR|INFO|WARN|DEBUG):``; the others
    become separate log entries.

* 4.4 runs ``sh -c "<cmd> ; echo ExitCode: $? 1>&2"`` and takes the status from a
  stderr line ``ExitCode: N``, so no line we write may start that way.

When ``remotes/VERSION`` is absent the version is unknown; the call's shape still
narrows it (the argv convention is 4.4-6.6, stdin is 6.4+), and every choice below
is one that the whole possible range reads correctly.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from eqliscsi import _lazy
from eqliscsi._lazyre import LazyPattern
from eqliscsi._record import Record
from eqliscsi.opennebula.args import Convention, OneVersion

__all__ = [
    "Dialect",
    "ErrorFraming",
    "MonitorResult",
    "NoOutput",
    "SizeResult",
    "SourceResult",
    "dialect_for",
    "one_line",
    "render_error",
    "render_log",
    "render_success",
]

MARK_BEGIN = "ERROR MESSAGE --8<------"
MARK_END = "ERROR MESSAGE ------>8--"


class ErrorFraming(enum.Enum):
    MARKERS = "markers"  # 4.4 … 6.0
    WHOLE_STDERR = "whole-stderr"  # 6.2 … 6.10
    TAGGED = "tagged"  # 7.0+


@dataclass(frozen=True, slots=True, eq=False, repr=False)
class Dialect(Record):
    """The stdout/stderr conventions of the calling oned."""

    version: OneVersion | None
    framing: ErrorFraming
    cp_prints_format: bool

    @property
    def logs_on_failure(self) -> bool:
        """Whether log lines may go to stderr when the action fails."""
        return self.framing is not ErrorFraming.WHOLE_STDERR


def dialect_for(version: OneVersion | None, convention: Convention | None = None) -> Dialect:
    if version is not None:
        if version < OneVersion(6, 2):
            framing = ErrorFraming.MARKERS
        elif version < OneVersion(7, 0):
            framing = ErrorFraming.WHOLE_STDERR
        else:
            framing = ErrorFraming.TAGGED
        return Dialect(version, framing, cp_prints_format=version >= OneVersion(6, 0))
    # Unknown version.  argv convention: 4.4 … 6.6, markers are read by 4.4-6.0 and
    # still show the message (with the marker text around it) in 6.2-6.6.  stdin
    # conventions: 6.4+, where the bare message is right.  "SOURCE raw" is read as
    # SOURCE by 4.4-5.12 (first token) and as SOURCE FORMAT by 6.x.
    if convention in (Convention.STDIN, Convention.DASH_STDIN):
        return Dialect(None, ErrorFraming.WHOLE_STDERR, cp_prints_format=True)
    return Dialect(None, ErrorFraming.MARKERS, cp_prints_format=True)


@dataclass(frozen=True, slots=True, eq=False, repr=False)
class MonitorResult(Record):
    """monitor: the pool's USED_MB, TOTAL_MB and FREE_MB."""

    used_mb: int
    total_mb: int
    free_mb: int


TYPE_CHECKING = False  # not typing's: importing typing costs a remote ~3 ms (docs/performance.md)

if TYPE_CHECKING:
    from eqliscsi.opennebula._results import NoOutput, SizeResult, SourceResult

    Result = SourceResult | SizeResult | MonitorResult | NoOutput

# The other actions' results are created on first use (see _results' docstring).
_LAZY = dict.fromkeys(("NoOutput", "SizeResult", "SourceResult"), "_results")


def __getattr__(name: str) -> object:
    return _lazy.load(__name__, "eqliscsi.opennebula", _LAZY, name)


def __dir__() -> list[str]:
    return _lazy.names(__name__, _LAZY)


_SAFE_TOKEN = LazyPattern(r"^[A-Za-z0-9._:/\-]{1,255}$")


def render_success(action: str, result: Result, dialect: Dialect) -> str:
    """stdout for a successful action ('' when oned expects nothing)."""
    if isinstance(result, MonitorResult):
        return f"USED_MB={result.used_mb}\nTOTAL_MB={result.total_mb}\nFREE_MB={result.free_mb}\n"
    from eqliscsi.opennebula._results import NoOutput, SizeResult  # noqa: PLC0415 - see _LAZY

    if isinstance(result, NoOutput):
        return ""
    if isinstance(result, SizeResult):
        if result.size_mb < 0:
            raise ValueError("size must not be negative")
        return f"{result.size_mb}\n"
    # A SOURCE with a blank would be split by oned (first token, §6.1).
    for token in (result.source, result.format):
        if not _SAFE_TOKEN.match(token):
            raise ValueError(f"unsafe token in {action} output")
    if action == "cp" and dialect.cp_prints_format:
        return f"{result.source} {result.format}\n"
    return f"{result.source}\n"


def one_line(text: str, limit: int = 1000) -> str:
    """Collapse whitespace, drop control characters, keep oned's parsers intact."""
    text = "".join(ch if ch.isprintable() or ch in "\t\n\r" else "?" for ch in text)
    text = " ".join(text.split())
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    # 4.4 reads the status from a stderr line "ExitCode: N".
    if text.startswith("ExitCode:"):
        text = "(" + text + ")"
    return text


def render_error(message: str, dialect: Dialect) -> str:
    """stderr for a failure: the one-line reason in the caller's framing."""
    line = one_line(message) or "eqliscsi failed without a message."
    # A message that starts like a log tag would be filtered out by 7.0 (§6.4).
    if re.match(r"^(ERROR|INFO|WARN|DEBUG):", line):
        line = "eqliscsi " + line
    if dialect.framing is ErrorFraming.MARKERS:
        return f"{MARK_BEGIN}\n{line}\n{MARK_END}\n"
    return f"{line}\n"


def render_log(level: str, action: str, message: str) -> str:
    """A log line as scripts_common.sh's log_info/log_debug write it."""
    return f"{level}: {action}: {one_line(message)}\n"
