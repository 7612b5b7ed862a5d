"""Sharding a batch over forked children: order, typed errors, dead children, cancel."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from pathlib import Path

import pytest

from eqliscsi.errors import IscsiError
from eqliscsi.iscsi_discovery import Portal
from eqliscsi.iscsi_discovery._shard import dumps, loads, run_sharded
from eqliscsi.iscsi_discovery.errors import (
    AuthenticationFailed,
    AuthMethodRejected,
    IscsiConnectionError,
    PduRejected,
    PduTooLarge,
    RedirectLoop,
    ScsiCommandFailed,
    TargetNotFound,
)

PORTAL = Portal("192.0.2.10", 3260)

ERRORS = [
    pytest.param(AuthenticationFailed(2, 1, PORTAL, "alice", "iqn.2026-01.t:a"), id="login"),
    pytest.param(AuthMethodRejected(2, 1, PORTAL, None, "iqn.2026-01.t:a"), id="auth-method"),
    pytest.param(TargetNotFound(2, 3, PORTAL, None, "iqn.2026-01.t:b"), id="not-found"),
    pytest.param(IscsiConnectionError("Cannot connect; check it."), id="plain"),
    pytest.param(PduRejected(4, PORTAL, "SendTargets"), id="rejected"),
    pytest.param(PduTooLarge(9000, 8192), id="too-large"),
    pytest.param(RedirectLoop(PORTAL, 3), id="redirect-loop"),
    pytest.param(
        ScsiCommandFailed(
            "INQUIRY", status=2, sense_key=5, asc=0x24, ascq=0, target="iqn.2026-01.t:c", lun=1
        ),
        id="scsi",
    ),
]


@pytest.mark.parametrize("exc", ERRORS)
def test_typed_errors_survive_the_pipe(exc: IscsiError) -> None:
    back = loads(dumps([exc]))[0]
    assert type(back) is type(exc)
    assert str(back) == str(exc) and back.args == exc.args
    assert vars(back) == vars(exc)
    assert isinstance(back, IscsiError) and back.reference == exc.reference


def _pid_of(item: int) -> tuple[int, int]:
    return item, os.getpid()


async def _work(items: Sequence[int]) -> list[tuple[int, int]]:
    await asyncio.sleep(0)
    return [_pid_of(i) for i in items]


@pytest.mark.parametrize("processes", [1, 2, 3, 50])
async def test_results_come_back_in_order(processes: int) -> None:
    items = list(range(23))
    out = await run_sharded(items, _work, processes=processes)
    assert [i for i, _ in out] == items
    pids = {pid for _, pid in out}
    assert os.getpid() in pids
    # One shard per process, capped by the number of items; each child is its own pid.
    assert len(pids) == min(processes, len(items))


async def test_errors_from_children_are_typed() -> None:
    async def work(items: Sequence[int]) -> list[object]:
        return [AuthenticationFailed(2, 1, PORTAL, "alice", f"iqn.2026-01.t:{i}") for i in items]

    out = await run_sharded(list(range(6)), work, processes=2)
    assert [type(e) for e in out] == [AuthenticationFailed] * 6
    assert [e.target for e in out] == [f"iqn.2026-01.t:{i}" for i in range(6)]  # type: ignore[attr-defined]


async def test_a_dead_child_is_redone_here() -> None:
    parent = os.getpid()

    async def work(items: Sequence[int]) -> list[tuple[int, int]]:
        if os.getpid() != parent:
            os._exit(3)  # a crash in the child: nothing comes back
        return [_pid_of(i) for i in items]

    out = await run_sharded(list(range(10)), work, processes=2)
    assert out == [(i, parent) for i in range(10)]


async def test_cancel_kills_and_reaps_children(tmp_path: Path) -> None:
    parent = os.getpid()
    pids = tmp_path / "pids"

    async def work(items: Sequence[int]) -> list[int]:
        if os.getpid() != parent:
            with open(pids, "a") as f:  # noqa: ASYNC230 - a test child, nothing else runs
                f.write(f"{os.getpid()}\n")
            await asyncio.sleep(60)
        else:
            await asyncio.sleep(60)
        return list(items)

    task = asyncio.ensure_future(run_sharded(list(range(4)), work, processes=3))
    for _ in range(200):  # up to 10 s for both children to start
        await asyncio.sleep(0.05)
        if len(_started(pids)) == 2:
            break
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    _assert_reaped(_started(pids))


def _started(pids: Path) -> list[int]:
    return [int(p) for p in pids.read_text().split()] if pids.exists() else []


def _assert_reaped(children: list[int]) -> None:
    assert len(children) == 2
    for pid in children:
        with pytest.raises(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)  # already reaped: no zombie left behind
        assert not Path(f"/proc/{pid}").exists()
