"""The client against a scripted hostile target: typed errors, bounded time and memory.

Each scenario of :class:`rig.targets.hostile.Scenario` must end in one of the
client's typed errors (or its timeout), well within the timeout budget, without
buffering what the target announces.
"""

from __future__ import annotations

import time
import tracemalloc

import pytest

from eqliscsi.iscsi_discovery import (
    IscsiConnectionError,
    IscsiProtocolError,
    IscsiTimeout,
    PduDecodeError,
    PduTooLarge,
    Portal,
    discover,
    probe,
)
from rig.targets.hostile import HostileTarget, Scenario

TIMEOUT = 1.0

CASES = [
    pytest.param(Scenario.SILENT, IscsiTimeout, id="silent"),
    pytest.param(Scenario.IMMEDIATE_EOF, IscsiConnectionError, id="immediate-eof"),
    pytest.param(Scenario.TRUNCATED_HEADER_EOF, IscsiConnectionError, id="truncated-header-eof"),
    pytest.param(Scenario.TRUNCATED_HEADER_STALL, IscsiTimeout, id="truncated-header-stall"),
    pytest.param(Scenario.HUGE_DATA_SEGMENT, PduTooLarge, id="16MiB-data-segment"),
    pytest.param(Scenario.UNKNOWN_OPCODE, PduDecodeError, id="unknown-opcode"),
    pytest.param(Scenario.GARBAGE_TEXT, IscsiProtocolError, id="garbage-text"),
    pytest.param(Scenario.EOF_MID_PDU, IscsiConnectionError, id="eof-mid-pdu"),
    pytest.param(Scenario.LOGIN_THEN_STALL, IscsiTimeout, id="login-then-stall"),
]


def _portal(target: HostileTarget) -> Portal:
    return Portal(target.portal.host, target.portal.port)


@pytest.mark.parametrize(("scenario", "expected"), CASES)
async def test_discover_against_hostile_target(
    scenario: Scenario, expected: type[Exception]
) -> None:
    async with HostileTarget.serve(scenario, stall_seconds=5) as target:
        tracemalloc.start()
        started = time.monotonic()
        try:
            with pytest.raises(expected) as info:
                await discover(_portal(target), timeout=TIMEOUT)
            elapsed = time.monotonic() - started
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert target.connections == 1
    # Bounded time: the login timeout plus slack, never the target's stall.
    assert elapsed < TIMEOUT + 2.0
    # Bounded memory: 16 MiB announced, far less than that ever held.
    assert peak < 4 << 20, f"peak {peak} bytes"
    message = str(info.value)
    assert "\n" not in message and message.endswith(".") and message.count(";") == 1
    assert f"127.0.0.1:{target.portal.port}" in message  # which target misbehaved


@pytest.mark.parametrize(
    ("scenario", "expected"),
    [c for c in CASES if c.id in ("silent", "16MiB-data-segment", "eof-mid-pdu")],
)
async def test_probe_against_hostile_target(scenario: Scenario, expected: type[Exception]) -> None:
    async with HostileTarget.serve(scenario, stall_seconds=5) as target:
        started = time.monotonic()
        with pytest.raises(expected):
            await probe(_portal(target), "iqn.2026-01.test.eqliscsi:vol", timeout=TIMEOUT)
        assert time.monotonic() - started < TIMEOUT + 2.0


async def test_connection_refused_is_typed() -> None:
    async with HostileTarget.serve(Scenario.SILENT) as target:
        port = target.portal.port
    # The server is closed now: nothing listens on that port.
    with pytest.raises(IscsiConnectionError, match="connection refused"):
        await discover(Portal("127.0.0.1", port), timeout=TIMEOUT)
