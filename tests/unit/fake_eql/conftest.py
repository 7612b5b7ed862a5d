"""Helpers for driving the sans-IO fake shell in memory."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from rig.fake_eql.faults import Faults
from rig.fake_eql.model import San
from rig.fake_eql.shell import EqlShell, Send, ShellEvent

NOW = datetime(2026, 11, 23, 12, 34, 56, tzinfo=UTC)
GROUP = "grp0"
QUIET = (
    "cli-settings paging off",
    "cli-settings confirmation off",
    "cli-settings events off",
    "cli-settings formatoutput off",
    "cli-settings reprintBadInput off",
)


def text(events: list[ShellEvent]) -> str:
    return b"".join(e.data for e in events if isinstance(e, Send)).decode()


class Term:
    """One shell plus conveniences: ``cmd`` types a line and returns the reply text
    between the echo and the next prompt."""

    def __init__(self, san: San, account: str = "grpadmin", **kw: object) -> None:
        self.faults = Faults()
        self.shell = EqlShell(
            san,
            account,
            clock=lambda: NOW,
            faults=lambda: self.faults,
            **kw,  # type: ignore[arg-type]
        )
        self.banner = text(self.shell.start())
        self.events: list[ShellEvent] = []

    def feed(self, data: bytes) -> str:
        self.events = self.shell.feed(data)
        return text(self.events)

    def cmd(self, line: str) -> list[str]:
        """Reply lines of one command (echo and trailing prompt removed)."""
        raw = self.feed(line.encode() + b"\r")
        echo = line + "\r\n"
        assert raw.startswith(echo), raw
        body = raw[len(echo) :]
        prompt = self.shell.prompt
        assert body.endswith(prompt), body
        body = body[: -len(prompt)]
        return body.split("\r\n")[:-1] if body else []

    def quiet(self, *, wide: bool = True) -> None:
        """What clients do first: settings off and, like Cinder, ``stty columns 255``."""
        for line in QUIET + (("stty columns 255",) if wide else ()):
            assert self.cmd(line) == []


@pytest.fixture
def san() -> San:
    return San(group_name=GROUP)


@pytest.fixture
def term(san: San) -> Term:
    return Term(san)


@pytest.fixture
def qterm(san: San) -> Term:
    t = Term(san)
    t.quiet()
    return t
