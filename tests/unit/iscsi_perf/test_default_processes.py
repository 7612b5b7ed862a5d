"""How many processes ``validate_many`` uses when the caller does not say.

A batch is sharded only when it is large (``SHARD_MIN_REQUESTS`` per process), the
machine has idle CPUs (CPUs less the 1-minute load average), no other thread runs (a fork
copies only the calling thread) and every portal is an IP address (a host name is
resolved in asyncio's threads).
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import Any

import pytest

from eqliscsi.iscsi_discovery import (
    Portal,
    ValidationRequest,
    _asyncio,
    default_processes,
    validate_many,
)
from eqliscsi.iscsi_discovery._asyncio import SHARD_MIN_REQUESTS

IQN = "iqn.2026-01.test.eqliscsi.perf:vol"


@pytest.fixture
def load(monkeypatch: pytest.MonkeyPatch) -> Callable[[float], None]:
    def set_load(one_minute: float) -> None:
        monkeypatch.setattr(os, "getloadavg", lambda: (one_minute, 0.0, 0.0))

    set_load(0.0)  # an idle machine unless a test says otherwise
    return set_load


@pytest.fixture
def cpus(monkeypatch: pytest.MonkeyPatch, load: Callable[[float], None]) -> Callable[[int], None]:
    def set_cpus(n: int) -> None:
        monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(n)))

    return set_cpus


@pytest.mark.parametrize(
    ("n_cpus", "busy", "requests", "expected"),
    [
        (8, 0.0, 0, 1),
        (8, 0.0, SHARD_MIN_REQUESTS - 1, 1),
        (8, 0.0, SHARD_MIN_REQUESTS, 1),
        (8, 0.0, 2 * SHARD_MIN_REQUESTS - 1, 1),
        (8, 0.0, 2 * SHARD_MIN_REQUESTS, 2),
        (8, 0.0, 3 * SHARD_MIN_REQUESTS, 3),
        (64, 0.0, 100 * SHARD_MIN_REQUESTS, 4),
        (2, 0.3, 100 * SHARD_MIN_REQUESTS, 2),
        (2, 0.7, 100 * SHARD_MIN_REQUESTS, 1),
        (2, 5.0, 100 * SHARD_MIN_REQUESTS, 1),
        (3, 1.2, 100 * SHARD_MIN_REQUESTS, 2),
        (8, 5.6, 100 * SHARD_MIN_REQUESTS, 2),
        (1, 0.0, 100 * SHARD_MIN_REQUESTS, 1),
    ],
    ids=[
        "empty", "below-one-share", "one-share", "below-two-shares", "two-shares",
        "shares-limit", "at-most-4", "two-idle-cpus", "two-cpus-one-busy",
        "two-cpus-loaded", "three-cpus-one-busy", "eight-cpus-mostly-busy", "one-cpu",
    ],
)  # fmt: skip
def test_processes_by_batch_size_cpus_and_load(
    cpus: Callable[[int], None],
    load: Callable[[float], None],
    n_cpus: int,
    busy: float,
    requests: int,
    expected: int,
) -> None:
    cpus(n_cpus)
    load(busy)
    assert default_processes(requests) == expected


@pytest.fixture
def other_thread() -> Iterator[None]:
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait, args=(10,))
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(10)


def test_no_fork_while_another_thread_runs(cpus: Callable[[int], None], other_thread: None) -> None:
    cpus(8)
    assert default_processes(100 * SHARD_MIN_REQUESTS) == 1


def test_no_fork_without_os_fork(
    cpus: Callable[[int], None], monkeypatch: pytest.MonkeyPatch
) -> None:
    cpus(8)
    monkeypatch.delattr(os, "fork")
    assert default_processes(100 * SHARD_MIN_REQUESTS) == 1


def _capture(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Replace the sharding runner; record the process count validate_many chose."""
    chosen: list[int] = []

    async def fake_run_sharded(
        items: Sequence[Any], work: Callable[[Sequence[Any]], Awaitable[list[Any]]], *,
        processes: int,
    ) -> list[Any]:  # fmt: skip
        chosen.append(processes)
        return [(True, None, None)] * len(items)

    monkeypatch.setattr(_asyncio, "run_sharded", fake_run_sharded)
    return chosen


@pytest.mark.parametrize(
    ("address", "processes", "expected"),
    [
        ("127.0.0.1", None, 2),
        ("::1", None, 2),
        ("localhost", None, 1),
        ("127.0.0.1", 1, 1),
        ("127.0.0.1", 3, 3),
    ],
    ids=["ipv4-default", "ipv6-default", "host-name-stays-in-process", "explicit-1", "explicit-3"],
)
def test_validate_many_default_shards_ip_portals_only(
    cpus: Callable[[int], None],
    monkeypatch: pytest.MonkeyPatch,
    address: str,
    processes: int | None,
    expected: int,
) -> None:
    cpus(3)
    chosen = _capture(monkeypatch)
    requests = [ValidationRequest(Portal(address, 3260), IQN)] * (2 * SHARD_MIN_REQUESTS)
    results = asyncio.run(validate_many(requests, processes=processes))
    assert len(results) == len(requests) and all(r.ok for r in results)
    assert chosen == [expected]


def test_processes_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        asyncio.run(validate_many([], processes=0))
