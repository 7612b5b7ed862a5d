"""``cli-settings`` and ``stty``: the commands every new CLI session starts with.

Part of :mod:`eqliscsi.san.commands`, imported on first use of one of its names
(see that module's docstring: a remote pays only for the commands it sends).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import ClassVar

from eqliscsi.san.commands import Command, _invalid

__all__ = ["CliSetting", "Stty", "session_setup"]


class OnOff(enum.Enum):
    ON = "on"
    OFF = "off"


@dataclass(frozen=True, eq=False, repr=False)
class CliSetting(Command):
    """``cli-settings <name> on|off``; only the names the session needs are accepted."""

    NAMES: ClassVar[frozenset[str]] = frozenset(
        {"paging", "confirmation", "events", "formatoutput", "reprintBadInput", "displayinMB"}
    )
    name: str
    value: OnOff = OnOff.OFF

    def __post_init__(self) -> None:
        if self.name not in self.NAMES:
            names = ", ".join(sorted(self.NAMES))
            raise _invalid("cli-settings name", self.name, f"one of {names}")

    def words(self) -> tuple[str, ...]:
        return ("cli-settings", self.name, self.value.value)


@dataclass(frozen=True, eq=False, repr=False)
class Stty(Command):
    """``stty hardwrap off`` (columns=None) or ``stty columns <n>``."""

    columns: int | None = None

    def __post_init__(self) -> None:
        if self.columns is not None and not 40 <= self.columns <= 255:
            raise _invalid("terminal width", self.columns, "40 to 255 columns")

    def words(self) -> tuple[str, ...]:
        if self.columns is None:
            return ("stty", "hardwrap", "off")
        return ("stty", "columns", str(self.columns))


def session_setup() -> tuple[Command, ...]:
    """Commands sent at the start of every session (equallogic-cli.md §3 and §10).

    They are idempotent and cheap.  ``cli-settings`` persists per account, ``stty`` per
    session, so both are sent each time: another client may have turned paging back on.
    """
    return (
        Stty(None),
        Stty(255),
        CliSetting("paging"),
        CliSetting("confirmation"),
        CliSetting("events"),
        CliSetting("formatoutput"),
        CliSetting("reprintBadInput"),
    )
