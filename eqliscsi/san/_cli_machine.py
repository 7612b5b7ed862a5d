"""The CLI conversation state machine (sans-IO); see :mod:`eqliscsi.san.conversation`.

The contract is in that module's docstring.  The machine, its events and its patterns
live here, loaded on first use of one of their names there (PEP 562), because a remote on
the broker path never runs a shell session: it only needs ``CommandCompleted`` and
``check_result``, and every remote pays its imports on each oned call
(docs/performance.md, "Remote start-up").  The broker, the direct session and the fake
group import it as before, from :mod:`eqliscsi.san.conversation`.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from eqliscsi._lazyre import LazyPattern
from eqliscsi.san.commands import Command
from eqliscsi.san.conversation import CommandCompleted
from eqliscsi.san.errors import SanConnectionError, SanProtocolError
from eqliscsi.san.parsers import find_error
from eqliscsi.secret import REDACTED

__all__ = ["MAX_OUTPUT", "CliConversation", "Closed", "ConvState", "Event", "Ready"]

_PROMPT_RE = LazyPattern(
    r"(?P<group>[^\s()>]+)(?:\((?P<mode>[^)\n]*)\))?> (?P<rest>[^\n]*)\Z", re.ASCII
)
_ANSI_RE = LazyPattern(r"\x1b\[[0-9;?]*[A-Za-z]", re.ASCII)
_EVENT_RE = LazyPattern(r"^\s*[A-Za-z0-9_-]+:\d+\.\d+:[^:\s]+:\d+:[A-Z]+:", re.ASCII)
_PAGING_RE = LazyPattern(r"Press any key to continue \(Q to quit\)\s*\Z", re.ASCII)
_PAGING_TEXT_RE = LazyPattern(r"Press any key to continue \(Q to quit\)\s*", re.ASCII)
_CONFIRM_RE = LazyPattern(r"\(y/n\) \[[a-z]+\]\s*\Z", re.ASCII)
# A command's output beyond this is a broken peer, not data (pool show grows with the volume
# count, bug 1661154, but stays far below this).
MAX_OUTPUT = 16 * 1024 * 1024
_MAX_PROMPT_LINE = 4096


class ConvState(enum.Enum):
    LOGIN = "login"
    READY = "ready"
    RUNNING = "running"
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class Ready:
    """The first prompt after login."""

    group: str
    banner: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Closed:
    """The session ended (logout, or the peer closed the channel)."""


Event = Ready | CommandCompleted | Closed


class CliConversation:
    """One shell session; see the module docstring for the contract."""

    def __init__(self, group: str | None = None) -> None:
        self.state = ConvState.LOGIN
        self.group = group
        self._lines: list[str] = []
        self._tail = ""
        self._size = 0
        self._events: list[Event] = []
        self._outgoing = bytearray()
        self._command: Command | None = None
        self._async_lines: list[str] = []
        self._mutating_sent = False

    @property
    def mutating_sent(self) -> bool:
        return self._mutating_sent

    # -- inputs -------------------------------------------------------------------------
    def receive_data(self, data: bytes) -> None:
        if self.state is ConvState.CLOSED:
            return
        self._size += len(data)
        if self._size > MAX_OUTPUT:
            self.state = ConvState.CLOSED
            raise SanProtocolError(
                f"The group sent more than {MAX_OUTPUT} bytes without a prompt; "
                "check the account's cli-settings and the group name."
            )
        # Complete lines are cleaned once and kept; only the partial last line is looked at
        # again on the next chunk, so a long output costs linear time.
        text = self._tail + data.decode("utf-8", "replace").replace("\r", "")
        *complete, self._tail = text.split("\n")
        for raw in complete:
            self._lines.append(_PAGING_TEXT_RE.sub("", _ANSI_RE.sub("", raw)))
        self._process()

    def receive_eof(self) -> None:
        if self.state is ConvState.CLOSED:
            return
        was = self.state
        self.state = ConvState.CLOSED
        self._events.append(Closed())
        if was is not ConvState.READY:
            what = "before the prompt" if was is ConvState.LOGIN else "in the middle of a command"
            raise SanConnectionError(
                f"The group closed the CLI session {what}; check the array's session limit "
                "and its event log.",
                mutating_sent=self._mutating_sent,
            )

    def send_command(self, command: Command) -> bytes:
        if self.state is not ConvState.READY:
            raise SanProtocolError(
                f"A command was sent while the session is {self.state.value}; this is a bug."
            )
        self.state = ConvState.RUNNING
        self._command = command
        self._async_lines = []
        if command.mutating:
            self._mutating_sent = True
        # CR only, as Cinder and eqlscript send it; the array takes CR as Enter.
        return (command.line() + "\r").encode("ascii")

    # -- outputs ------------------------------------------------------------------------
    def next_event(self) -> Event | None:
        return self._events.pop(0) if self._events else None

    def data_to_send(self) -> bytes:
        out = bytes(self._outgoing)
        self._outgoing.clear()
        return out

    # -- internals ----------------------------------------------------------------------
    def _process(self) -> None:
        if len(self._tail) > _MAX_PROMPT_LINE:
            return  # prompts and questions are short; a long partial line is output
        tail = _ANSI_RE.sub("", self._tail)
        if _PAGING_RE.search(tail):
            self._tail = ""
            self._outgoing += b" "
            return
        if self.state is ConvState.RUNNING and _CONFIRM_RE.search(tail):
            self._tail = ""
            self._outgoing += b"y\r"
            return
        m = _PROMPT_RE.match(tail)
        if not m or (self.group is not None and m.group("group") != self.group):
            return
        lines = self._lines
        self._lines = []
        self._tail = ""
        self._size = 0
        if self.state is ConvState.LOGIN:
            self.group = m.group("group")
            self.state = ConvState.READY
            self._events.append(Ready(self.group, tuple(self._drop_events(lines))))
            return
        if self.state is ConvState.RUNNING:
            assert self._command is not None
            cmd = self._command
            out = self._drop_events(self._strip_echo(lines, cmd.line()))
            if cmd.secrets():
                out = [_redact(line, cmd.secrets()) for line in out]
            self._command = None
            self.state = ConvState.READY
            self._events.append(
                CommandCompleted(
                    command=cmd,
                    lines=tuple(out),
                    error=find_error(out),
                    mode=m.group("mode"),
                    reprinted=m.group("rest"),
                    events=tuple(self._async_lines),
                )
            )
        # A prompt while READY (e.g. after an empty line) carries nothing to report.

    def _drop_events(self, lines: list[str]) -> list[str]:
        kept = []
        for line in lines:
            if _EVENT_RE.match(line):
                self._async_lines.append(line)
            else:
                kept.append(line)
        return kept

    @staticmethod
    def _strip_echo(lines: list[str], typed: str) -> list[str]:
        # The echo may follow a reprinted prompt on the same line (a previous rejected input
        # left in the edit buffer) and may be hard-wrapped: glue lines until they spell the
        # typed text.  Event lines can interleave, so those are skipped while gluing.
        acc = ""
        for n, line in enumerate(lines):
            if _EVENT_RE.match(line):
                continue
            acc += line
            if acc.rstrip().endswith(typed):
                return lines[n + 1 :]
            if len(acc) > len(typed) + 512:
                break
        return lines


def _redact(line: str, secrets: tuple[bytes, ...]) -> str:
    for s in secrets:
        line = line.replace(s.decode("utf-8", "replace"), REDACTED)
    return line
