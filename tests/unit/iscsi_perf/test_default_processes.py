"""How many processes ``validate_many`` uses when the caller does not say.

A batch is sharded only when it is large (``SHARD_MIN_REQUESTS`` per process), the
machine has idle CPUs (CPUs less the tasks other work keeps runnable now), no other
thread runs (a fork copies only the calling thread) and every portal is an IP address
(a host name is resolved in asyncio's threads).
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Awaitable, Callable, Iterator, Sequence
from pathlib import Path
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
    def set_load(busy: float) -> None:
        monkeypatch.setattr(_asyncio, "_busy_cpus", lambda: busy)

    set_load(0.0)  # an idle machine unless a test says otherwise
    return set_load


@pytest.mark.parametrize(
    ("content", "one_minute", "expected"),
    [
        pytest.param(b"0.98 0.60 0.40 1/150 4242\n", 0.98, 0.0, id="only-this-process"),
        pytest.param(b"2.10 1.50 1.00 3/150 4242\n", 2.10, 2.0, id="two-others-running"),
        pytest.param(b"0.10 0.10 0.10 1/150 4242\n", 0.10, 0.0, id="idle"),
        pytest.param(b"garbage\n", 0.7, 0.7, id="unreadable-falls-back"),
        pytest.param(None, 1.3, 1.3, id="no-file-falls-back"),
    ],
)
def test_busy_cpus_reads_the_runnable_tasks_now_not_the_lagging_average(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    content: bytes | None,
    one_minute: float,
    expected: float,
) -> None:
    path = tmp_path / "loadavg"
    if content is not None:
        path.write_bytes(content)
    monkeypatch.setattr(_asyncio, "_LOADAVG", str(path))
    monkeypatch.setattr(os, "getloadavg", lambda: (one_minute, 0.0, 0.0))
    assert _asyncio._busy_cpus() == expected


def test_busy_cpus_on_this_machine_is_a_count() -> None:
    busy = _asyncio._busy_cpus()
    assert busy == int(busy) and 0 <= busy < 10_000


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
        ("192.0.2.10", None, 3),
        ("2001:db8::10", None, 3),
        ("127.0.0.1", None, 3),
        ("::1", None, 3),
        ("localhost", None, 1),
        ("127.0.0.1", 1, 1),
        ("127.0.0.1", 3, 3),
    ],
    ids=[
        "ipv4-default", "ipv6-default", "loopback-target",
        "ipv6-loopback-target", "host-name-stays-in-process", "explicit-1",
        "explicit-3",
    ],
)  # fmt: skip
def test_validate_many_default_shards_ip_portals_only(
    cpus: Callable[[int], None],
    monkeypatch: pytest.MonkeyPatch,
    address: str,
    processes: int | None,
    expected: int,
) -> None:
    cpus(3)
    chosen = _capture(monkeypatch)
    requests = [ValidationRequest(Portal(address, 3260), IQN)] * (3 * SHARD_MIN_REQUESTS)
    results = asyncio.run(validate_many(requests, processes=processes))
    assert len(results) == len(requests) and all(r.ok for r in results)
    assert chosen == [expected]


def test_processes_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        asyncio.run(validate_many([], processes=0))
