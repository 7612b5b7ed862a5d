"""The CLI conversation: a sans-IO state machine for one Group Manager shell session.

Inputs and outputs (the SSH adapter is a pump around them)::

    receive_data(bytes)      bytes read from the shell channel
    receive_eof()            the channel closed
    send_command(Command)    -> bytes to write (only when ready)
    data_to_send()           -> bytes the conversation itself must write (paging answers)
    next_event()             -> Ready | CommandCompleted | Closed | None (need data)

States::

    LOGIN  --prompt-->  READY  --send_command-->  RUNNING  --prompt-->  READY
      any  --eof-->  CLOSED

Rules, after equallogic-cli.md §2 and §9:

* The prompt is ``<group>> `` or ``<group>(<mode>)> `` at the *start of a line* and at the
  end of what has arrived (eqlscript's ``\\n(\\S+?)(\\(.+?\\))?>``).  ``endswith`` on a fixed
  string hung Cinder when the array reprinted bad input after the prompt (bug 1378394), so a
  prompt followed by text on the same line is also accepted and the text is reported as
  ``reprinted``.  Once the first prompt was seen, only that group name counts.
* Output is everything between the command's echo and the next prompt.  The echo is the
  typed line, possibly hard-wrapped; it is removed only when it matches what we typed.
* ``\\r`` and ANSI escape sequences are dropped; lines are split on ``\\n``.
* Asynchronous event lines (``netmgtd:1700722419.77:rcc_util.c:1024:INFO:...``) are removed:
  they can appear at any point while ``cli-settings events`` is on.
* ``Press any key to continue (Q to quit)`` is answered with a space; a y/n confirmation is
  answered ``y`` because the conversation only sends commands that the caller decided to run.
* EOF is an error, never a loop (Cinder bug 1410627).
"""

from __future__ import annotations

from dataclasses import dataclass

from eqliscsi import _lazy
from eqliscsi._record import Record
from eqliscsi.san.commands import Command
from eqliscsi.san.errors import SanCommandError, SanObjectExists, SanObjectMissing

TYPE_CHECKING = False  # not typing's: importing typing costs a remote ~3 ms (docs/performance.md)

if TYPE_CHECKING:
    from eqliscsi.san._cli_machine import (
        MAX_OUTPUT,
        CliConversation,
        Closed,
        ConvState,
        Event,
        Ready,
    )

__all__ = [
    "MAX_OUTPUT",
    "CliConversation",
    "Closed",
    "CommandCompleted",
    "ConvState",
    "Event",
    "Ready",
    "check_result",
    "classify_error",
]


@dataclass(frozen=True, slots=True, eq=False, repr=False)
class CommandCompleted(Record):
    """A command's output lines, once the prompt came back."""

    command: Command
    lines: tuple[str, ...]
    error: str | None
    mode: str | None
    reprinted: str
    events: tuple[str, ...]


# The state machine is loaded on first use: see eqliscsi.san._cli_machine's docstring.
_LAZY = dict.fromkeys(
    ("MAX_OUTPUT", "CliConversation", "Closed", "ConvState", "Event", "Ready"), "_cli_machine"
)


def __getattr__(name: str) -> object:
    return _lazy.load(__name__, "eqliscsi.san", _LAZY, name)


def __dir__() -> list[str]:
    return _lazy.names(__name__, _LAZY)


def classify_error(cmd: Command, error: str) -> SanCommandError:
    """Turn an error line into the matching exception (missing / exists / other)."""
    text = error.lower()
    shown = cmd.display()
    if "does not exist" in text or "not found" in text:
        cls: type[SanCommandError] = SanObjectMissing
    elif "already exists" in text or "already in use" in text:
        cls = SanObjectExists
    else:
        cls = SanCommandError
    return cls(
        f"The group refused '{shown}' with '{error}'; fix the cause named by the array and retry.",
        command=shown,
        error_line=error,
    )


def check_result(result: CommandCompleted) -> CommandCompleted:
    if result.error is not None:
        raise classify_error(result.command, result.error)
    return result
