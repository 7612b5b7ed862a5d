"""The fake Group Manager terminal: a sans-IO interpreter of typed bytes.

Inputs: :meth:`EqlShell.start` once, then :meth:`EqlShell.feed` with whatever bytes
the client typed, and :meth:`EqlShell.resize` on window changes.  Outputs: a list of
events for the transport adapter, in order:

- :class:`Send` - bytes for the channel (each command's reply plus the next prompt
  is one ``Send``, equallogic-cli.md §10.2);
- :class:`ApplyLuns` - data-plane work that must be done *before* the reply that
  follows it is sent (the client may log in as soon as it reads the IQN);
- :class:`Delay` / :class:`Stall` / :class:`Close` - injected latency, a command that
  never answers, the connection going away.

Terminal behaviour follows §2.4 and §10: echo of typed characters; CR, LF and CRLF
each one Enter; ``% Error - …`` as one line; with ``reprintBadInput on`` the rejected
line is reprinted after the prompt and left in the edit buffer (Cinder bug 1378394);
hard wrap at the terminal width unless ``stty hardwrap off``; paging, confirmation
and event lines per the account's ``cli-settings``.
"""

from __future__ import annotations

import copy
import enum
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from rig.fake_eql.commands import Confirm, Reply, Session, SyntaxProblem, run, tokenize
from rig.fake_eql.faults import Faults, matches
from rig.fake_eql.model import CliSettings, LunOp, San
from rig.fake_eql.render import hard_wrap

__all__ = [
    "BANNER",
    "PAGER_PROMPT",
    "ApplyLuns",
    "Close",
    "Delay",
    "EqlShell",
    "Send",
    "ShellEvent",
    "Stall",
]

BANNER = (
    "\r\n           Welcome to Group Manager\r\n\r\n        Copyright 2001-2016 Dell Inc.\r\n\r\n"
)
PAGER_PROMPT = "Press any key to continue (Q to quit)"
CRLF = "\r\n"
_MAX_LINE = 4096  # the edit buffer's bound; longer input is dropped, not buffered


@dataclass(frozen=True, slots=True)
class Send:
    data: bytes


@dataclass(frozen=True, slots=True)
class ApplyLuns:
    ops: tuple[LunOp, ...]


@dataclass(frozen=True, slots=True)
class Delay:
    seconds: float


@dataclass(frozen=True, slots=True)
class Stall:
    pass


@dataclass(frozen=True, slots=True)
class Close:
    exit_status: int = 0


ShellEvent = Send | ApplyLuns | Delay | Stall | Close


class _Mode(enum.Enum):
    LINE = "line"
    CONFIRM = "confirm"
    PAGING = "paging"
    CLOSED = "closed"


class EqlShell:
    """One CLI session of ``account`` against the shared model ``san``."""

    def __init__(
        self,
        san: San,
        account: str,
        *,
        columns: int = 80,
        rows: int = 24,
        faults: Callable[[], Faults] = Faults,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        connections: Callable[[str], int] = lambda _iqn: 0,
        transport: str = "ssh",
    ) -> None:
        self.san = san
        self.session = Session(account, columns=columns or 80, rows=rows or 24)
        self._faults = faults
        self._clock = clock
        self._connections = connections
        self._transport = transport
        self._mode = _Mode.LINE
        self._buf: list[str] = []
        self._out: list[str] = []
        self._events: list[ShellEvent] = []
        self._pending_pages: list[str] = []
        self._pending_tail = ""
        self._confirm: Confirm | None = None
        self._last_cr = False
        self._esc = 0  # 0: none, 1: after ESC, 2: inside a CSI/SS3 sequence
        self.commands_run = 0

    # -- public API ----------------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self._mode is _Mode.CLOSED

    @property
    def prompt(self) -> str:
        return self.session.prompt(self.san.group_name)

    def start(self) -> list[ShellEvent]:
        """The login banner, the login event line (events on) and the first prompt."""
        self._out.append(BANNER)
        if self._settings().events:
            self._emit_lines(
                [
                    self._event(
                        f"CLI: Login to account {self.session.account} succeeded, "
                        f"using {self._transport}."
                    )
                ],
                page=False,
            )
        self._out.append(self.prompt)
        return self._drain()

    def resize(self, columns: int, rows: int) -> None:
        # `stty columns` wins over the window size, as on a real terminal line.
        if columns > 0 and not self.session.stty_columns:
            self.session.columns = columns
        if rows > 0:
            self.session.rows = rows

    def feed(self, data: bytes) -> list[ShellEvent]:
        for byte in data:
            if self._mode is _Mode.CLOSED:
                break
            self._byte(byte)
        return self._drain()

    # -- byte handling ---------------------------------------------------------------

    def _byte(self, b: int) -> None:
        was_cr, self._last_cr = self._last_cr, b == 0x0D
        if b == 0x0A and was_cr:
            return  # CRLF is one Enter
        if self._esc:
            # Arrow keys and friends: ESC [ ... final byte, or ESC O x.  The array's
            # line editor has history; the fake just ignores them.
            if self._esc == 1:
                self._esc = 2 if b in (0x5B, 0x4F) else 0
            elif 0x40 <= b <= 0x7E:
                self._esc = 0
            return
        if self._mode is _Mode.PAGING:
            self._page_key(b)
            return
        if b in (0x0D, 0x0A):
            self._enter()
        elif b == 0x1B:
            self._esc = 1
        elif b in (0x08, 0x7F):
            if self._buf:
                self._buf.pop()
                self._out.append("\b \b")
        elif b == 0x03:  # Ctrl-C abandons the line
            self._buf.clear()
            self._out.append("^C" + CRLF + self._current_prompt())
            self._mode = _Mode.LINE
            self._confirm = None
        elif b == 0x15:  # Ctrl-U erases the line
            self._out.append("\b \b" * len(self._buf))
            self._buf.clear()
        elif 0x20 <= b <= 0x7E and len(self._buf) < _MAX_LINE:
            self._buf.append(chr(b))
            self._out.append(chr(b))

    def _current_prompt(self) -> str:
        return self.prompt

    def _enter(self) -> None:
        line = "".join(self._buf)
        self._buf.clear()
        self._out.append(CRLF)
        if self._mode is _Mode.CONFIRM:
            confirm, self._confirm = self._confirm, None
            self._mode = _Mode.LINE
            assert confirm is not None
            if line.strip().lower() in ("y", "yes"):
                self._reply(confirm.action(), line)
            else:
                self._out.append(self.prompt)
            return
        if not line.strip():
            self._out.append(self.prompt)
            return
        self._command(line)

    def _command(self, line: str) -> None:
        self.commands_run += 1
        faults = self._faults()
        if faults.latency > 0:
            self._flush()
            self._events.append(Delay(faults.latency))
        # Parse first so that faults can name a command by its expanded keywords.
        named = faults.drop_at or faults.stall_at or faults.error_at
        path = _canonical_path(self.san, self.session, line) if named else ""
        if (faults.drop_after is not None and self.commands_run > faults.drop_after) or matches(
            faults.drop_at, line, path
        ):
            self._close(abrupt=True)
            return
        if matches(faults.stall_at, line, path):
            self._flush()
            self._events.append(Stall())
            self._mode = _Mode.CLOSED
            return
        if matches(faults.error_at, line, path):
            self._reply(Reply(error=faults.error_text), line)
            return
        try:
            words = tokenize(line)
        except SyntaxProblem as e:
            self._reply(Reply(error=e.message, syntax=True), line)
            return
        reply = run(self.san, self.session, words, now=self._clock(), connections=self._connections)
        self._reply(reply, line)

    def _reply(self, reply: Reply, line: str) -> None:
        settings = self._settings()
        if reply.lun_ops:
            self._flush()
            self._events.append(ApplyLuns(reply.lun_ops))
        lines = list(reply.lines)
        if reply.error is not None:
            lines = [f"% Error - {reply.error}"]
        if settings.events and reply.events and self.san.info_messages:
            lines += [self._event(text) for text in reply.events]
        if reply.confirm is not None:
            self._emit_lines(lines, page=False)
            self._out.append(reply.confirm.question + " ")
            self._confirm = reply.confirm
            self._mode = _Mode.CONFIRM
            return
        if reply.logout:
            self._emit_lines(lines, page=False)
            self._close(abrupt=False)
            return
        tail = self.prompt
        if reply.syntax and settings.reprintBadInput:
            # The array puts the rejected text back into the edit buffer (§2.4).
            tail += line
            self._buf = list(line)
        self._emit_lines(lines, page=settings.paging, tail=tail)

    def _emit_lines(self, lines: list[str], *, page: bool, tail: str = "") -> None:
        width = self.session.columns if self.session.hardwrap else None
        wrapped = [piece for line in lines for piece in hard_wrap(line, width)]
        page_len = max(self.session.rows - 1, 1)
        if page and len(wrapped) > page_len:
            self._out.append(CRLF.join(wrapped[:page_len]) + CRLF + PAGER_PROMPT)
            self._pending_pages = wrapped[page_len:]
            self._pending_tail = tail
            self._mode = _Mode.PAGING
            return
        self._out.append("".join(piece + CRLF for piece in wrapped) + tail)

    def _page_key(self, b: int) -> None:
        # Erase the pager line, then show the next screenful (or stop on Q).
        self._out.append("\r" + " " * len(PAGER_PROMPT) + "\r")
        self._mode = _Mode.LINE
        rest, self._pending_pages = self._pending_pages, []
        if b in (ord("q"), ord("Q")):
            rest = []
        self._emit_lines(rest, page=True, tail=self._pending_tail)

    # -- helpers ----------------------------------------------------------------------

    def _settings(self) -> CliSettings:
        return self.san.account_settings(self.session.account)

    def _event(self, text: str) -> str:
        # Asynchronous event lines look like the console transcript of §2.4.
        stamp = self._clock().timestamp()
        return f"netmgtd:{stamp:.2f}:rcc_util.c:1024:INFO:25.2.9:{text}"

    def _close(self, *, abrupt: bool) -> None:
        self._flush()
        self._events.append(Close(1 if abrupt else 0))
        self._mode = _Mode.CLOSED

    def _flush(self) -> None:
        if self._out:
            self._events.append(Send("".join(self._out).encode("utf-8", "replace")))
            self._out.clear()

    def _drain(self) -> list[ShellEvent]:
        self._flush()
        events, self._events = self._events, []
        return events


def _canonical_path(san: San, session: Session, line: str) -> str:
    """The expanded keywords of ``line`` (``vol sel v1 off`` → ``volume select offline``).

    Computed on a throw-away copy of the session so that fault matching never changes
    state; parse errors just give the keywords read so far.
    """
    probe = copy.deepcopy(san)
    probe_session = copy.copy(session)
    try:
        words = tokenize(line)
    except SyntaxProblem:
        return ""
    return run(probe, probe_session, words, now=datetime(2000, 1, 1, tzinfo=UTC)).path
