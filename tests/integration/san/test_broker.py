"""The session broker: on-demand start, warm reuse, session cap, crash safety, idle exit."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from eqliscsi.san.broker import FairLimiter
from eqliscsi.san.broker_client import BrokerConfig, broker_session, run_action
from eqliscsi.san.broker_sync import drive
from eqliscsi.san.commands import VolumeCreate
from eqliscsi.san.errors import SanAuthError, SanConnectionError, SanProtocolError, SanTimeout
from eqliscsi.san.ops import CliRunner, SanOps, VolumeSpec
from eqliscsi.secret import Secret
from rig.fake_eql.faults import Faults
from rig.need import need
from tests.integration.san.conftest import Group, with_

REMOTE = Path(__file__).with_name("remote_action.py")
ROOT = Path(__file__).resolve().parents[3]


def _pid(d: Path) -> int | None:
    try:
        return int((d / "broker.pid").read_text())
    except (OSError, ValueError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie counts as gone.
    with contextlib.suppress(OSError):
        if Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z":
            return False
    return True


def _mode(p: Path) -> int:
    return stat.S_IMODE(os.stat(p).st_mode)


def _read(p: Path) -> bytes:
    with open(p, "rb") as f:
        return f.read()


def _reap() -> None:
    # Brokers started by clients in this process are our children until they exit.
    with contextlib.suppress(ChildProcessError):
        while os.waitpid(-1, os.WNOHANG)[0]:
            pass


def _stop(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGCONT)
        os.kill(pid, signal.SIGTERM)
    for _ in range(100):
        _reap()
        if not _alive(pid):
            return
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


@pytest.fixture
def broker_dir(tmp_path: Path) -> Iterator[Path]:
    d = tmp_path / "broker"
    pids: set[int] = set()
    yield d
    for pid in {_pid(d), *pids} - {None}:
        assert pid is not None
        _stop(pid)
    _reap()


@pytest.fixture(autouse=True)
def _pythonpath(monkeypatch: pytest.MonkeyPatch) -> None:
    # The broker runs as `python -m eqliscsi.san.broker` from "/"; make the package importable.
    monkeypatch.setenv("PYTHONPATH", str(ROOT))


def cfg(d: Path, **kw: object) -> BrokerConfig:
    base: dict[str, object] = {"directory": str(d), "fallback_direct": False, "start_timeout": 15.0}
    base.update(kw)
    return BrokerConfig(**base)  # type: ignore[arg-type]


async def test_started_on_demand_private_and_warm(group: Group, broker_dir: Path) -> None:
    c = cfg(broker_dir)
    async with broker_session(group.endpoint, c) as r1:
        assert not r1.reused
        assert await SanOps(r1, 100).group_ip() == "127.0.0.1"
    assert _mode(broker_dir) == 0o700
    assert _mode(broker_dir / "broker.sock") == 0o600
    pid = _pid(broker_dir)
    assert pid is not None and _alive(pid)
    async with broker_session(group.endpoint, c) as r2:
        assert r2.reused  # the same warm CLI session
        await SanOps(r2, 100).create_volume(VolumeSpec("b-1", 100))
    assert _pid(broker_dir) == pid
    assert group.fake.max_sessions_seen == 1
    assert b"fake-group-password" not in _read(broker_dir / "broker.log")


async def test_password_change_gets_its_own_pool(group: Group, broker_dir: Path) -> None:
    c = cfg(broker_dir)
    async with broker_session(group.endpoint, c) as r1:
        await SanOps(r1, 100).group_ip()
    bad = with_(group.endpoint, password=Secret(b"not-the-password", origin="test"))
    with pytest.raises(SanAuthError):
        async with broker_session(bad, c):
            pass


async def test_32_processes_share_at_most_4_sessions(group: Group, broker_dir: Path) -> None:
    # The fake refuses a 5th concurrent session, so any overshoot would fail an action.
    group.fake.set_faults(Faults(max_sessions=4, latency=0.02))
    req = {"endpoint": group.endpoint.to_wire(), "broker_dir": str(broker_dir)}

    async def one(i: int) -> dict[str, object]:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            str(REMOTE),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        # Half use the asyncio client, half the blocking one.
        body = {**req, "action": "create", "name": f"par-{i}", "sync": i % 2 == 0}
        out, err = await asyncio.wait_for(proc.communicate(json.dumps(body).encode()), 120)
        assert proc.returncode == 0, err.decode()
        return dict(json.loads(out))

    results = await asyncio.gather(*(one(i) for i in range(32)))
    errors = [r["error"] for r in results if "error" in r]
    assert errors == []
    iqns = {r["result"] for r in results}
    assert len(iqns) == 32
    assert not any(r["asyncssh_loaded"] for r in results)
    assert [r["asyncio_loaded"] for r in results] == [i % 2 == 1 for i in range(32)]
    assert 1 <= group.fake.max_sessions_seen <= 4
    assert group.fake.sessions_refused == 0
    # The password went over stdin and the socket only, never into a command line.
    pid = _pid(broker_dir)
    assert pid is not None
    assert b"fake-group-password" not in _read(Path(f"/proc/{pid}/cmdline"))


async def test_killed_broker_is_replaced(group: Group, broker_dir: Path) -> None:
    c = cfg(broker_dir)

    async def ip(r: CliRunner) -> str:
        return await SanOps(r, 100).group_ip()

    assert await run_action(group.endpoint, ip, broker=c) == "127.0.0.1"
    old = _pid(broker_dir)
    assert old is not None
    os.kill(old, signal.SIGKILL)
    for _ in range(100):
        _reap()
        if not _alive(old):
            break
        await asyncio.sleep(0.02)
    assert await run_action(group.endpoint, ip, broker=c) == "127.0.0.1"
    new = _pid(broker_dir)
    assert new is not None and new != old


async def test_stuck_broker_is_replaced_within_the_timeout(group: Group, broker_dir: Path) -> None:
    c = cfg(broker_dir, ping_timeout=0.5)

    async def ip(r: CliRunner) -> str:
        return await SanOps(r, 100).group_ip()

    assert await run_action(group.endpoint, ip, broker=c) == "127.0.0.1"
    old = _pid(broker_dir)
    assert old is not None
    os.kill(old, signal.SIGSTOP)  # alive, holding its socket, answering nothing
    try:
        t0 = time.monotonic()
        assert await run_action(group.endpoint, ip, broker=c) == "127.0.0.1"
        assert time.monotonic() - t0 < 10
        new = _pid(broker_dir)
        assert new is not None and new != old
        for _ in range(100):
            _reap()
            if not _alive(old):
                break
            await asyncio.sleep(0.02)
        assert not _alive(old)
    finally:
        _stop(old)


async def test_idle_broker_exits(group: Group, broker_dir: Path) -> None:
    c = cfg(broker_dir, idle_exit=1.0, session_idle=0.5)
    async with broker_session(group.endpoint, c) as r:
        await SanOps(r, 100).group_ip()
    pid = _pid(broker_dir)
    assert pid is not None
    for _ in range(200):
        _reap()
        if not _alive(pid):
            break
        await asyncio.sleep(0.05)
    assert not _alive(pid)
    assert not (broker_dir / "broker.sock").exists()
    assert group.fake.sessions_open == 0


async def test_queue_timeout_when_all_sessions_busy(group: Group, broker_dir: Path) -> None:
    c = cfg(broker_dir, max_sessions=1, queue_timeout=0.5)
    async with broker_session(group.endpoint, c) as r1, broker_session(group.endpoint, c) as r2:
        # Sessions are lent per command: r2 got in while r1 was between commands.
        await SanOps(r1, 100).group_ip()
        group.fake.set_faults(Faults(latency=3.0))
        busy = asyncio.create_task(SanOps(r1, 100).group_ip())
        await asyncio.sleep(0.2)  # r1's command now holds the only session for 3 s
        t0 = time.monotonic()
        with pytest.raises(SanTimeout, match="became free"):
            await SanOps(r2, 100).group_ip()
        assert time.monotonic() - t0 < 2.5
        assert await asyncio.wait_for(busy, 10) == "127.0.0.1"


async def test_fair_limiter_serves_in_arrival_order() -> None:
    lim: FairLimiter[str] = FairLimiter(1)
    await lim.acquire()
    order: list[int] = []

    async def waiter(i: int) -> None:
        await lim.acquire()
        order.append(i)
        await asyncio.sleep(0)
        lim.release()

    tasks = []
    for i in range(5):
        tasks.append(asyncio.create_task(waiter(i)))
        await asyncio.sleep(0)
    lim.release()
    await asyncio.wait_for(asyncio.gather(*tasks), 5)
    assert order == [0, 1, 2, 3, 4]
    assert lim.in_use == 0


async def test_fair_limiter_hands_over_by_key_and_survives_cancel() -> None:
    lim: FairLimiter[str] = FairLimiter(1)
    await lim.acquire("a")
    gone = asyncio.create_task(lim.acquire("a"))
    b = asyncio.create_task(lim.acquire("b"))
    await asyncio.sleep(0)
    gone.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await gone
    # The session is for "a"; the oldest live waiter wants "b": it gets the slot only.
    assert lim.release("session-a", key="a") == "session-a"
    assert await b is None
    assert lim.in_use == 1
    assert lim.release() is None
    assert lim.in_use == 0


def test_broker_clients_import_neither_asyncssh_nor_asyncio() -> None:
    code = (
        "import sys, eqliscsi.san.broker_client, eqliscsi.san.ops;"
        "assert 'asyncssh' not in sys.modules, 'asyncssh imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, timeout=60)
    code = (
        "import sys, eqliscsi.san.broker_sync, eqliscsi.san.ops;"
        "bad = {'asyncssh', 'asyncio'} & set(sys.modules); assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, timeout=60)


def test_drive_refuses_a_coroutine_that_suspends() -> None:
    async def suspends() -> None:
        await asyncio.sleep(0)

    with pytest.raises(SanProtocolError):
        drive(suspends())

    async def returns() -> int:
        return 7

    assert drive(returns()) == 7


async def test_unsafe_broker_dir_falls_back_to_direct(group: Group, tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)  # e.g. pre-created by someone else: never used for the socket

    async def ip(r: CliRunner) -> str:
        return await SanOps(r, 100).group_ip()

    c = cfg(shared, fallback_direct=True)
    assert await run_action(group.endpoint, ip, broker=c) == "127.0.0.1"
    assert not (shared / "broker.sock").exists()
    with pytest.raises(SanConnectionError, match="not a private directory"):
        await run_action(group.endpoint, ip, broker=cfg(shared))


async def test_dropped_warm_session_is_replaced_for_a_read(group: Group, broker_dir: Path) -> None:
    c = cfg(broker_dir)

    async def ip(r: CliRunner) -> str:
        return await SanOps(r, 100).group_ip()

    assert await run_action(group.endpoint, ip, broker=c) == "127.0.0.1"
    # The warm session has run 7 setup commands + 1; its next command is dropped.
    group.fake.set_faults(Faults(drop_after=8))
    assert await run_action(group.endpoint, ip, broker=c, backoff=0.05) == "127.0.0.1"


async def test_dropped_warm_session_is_not_retried_for_a_mutation(
    group: Group, broker_dir: Path
) -> None:
    c = cfg(broker_dir)
    calls = 0

    async def ip(r: CliRunner) -> str:
        return await SanOps(r, 100).group_ip()

    async def create(r: CliRunner) -> object:
        nonlocal calls
        calls += 1
        # Skip the read that would come first, so the dropped command is the create.
        return await r.run(VolumeCreate("drop-1", 100))

    assert await run_action(group.endpoint, ip, broker=c) == "127.0.0.1"
    group.fake.set_faults(Faults(drop_after=8))
    with pytest.raises(SanConnectionError) as exc:
        await run_action(group.endpoint, create, broker=c, backoff=0.05)
    assert exc.value.mutating_sent
    assert calls == 1


async def test_other_users_are_refused_even_with_loose_modes(group: Group) -> None:
    need(os.getuid() == 0, "needs root to connect as another user")
    # The venv interpreter may live under /root; the other user runs the system one.
    other_python = shutil.which("python3", path="/usr/bin:/bin")
    need(other_python is not None, "python3 is not installed in /usr/bin (Debian package python3)")
    assert other_python is not None
    # A directory the other user can traverse (pytest's tmp_path is private to root).
    top = Path(tempfile.mkdtemp(prefix="eqliscsi-broker-test-"))
    broker_dir = top / "b"
    try:
        async with broker_session(group.endpoint, cfg(broker_dir)) as r:
            await SanOps(r, 100).group_ip()
        # Loosen the modes as a careless admin might; the broker checks SO_PEERCRED itself.
        os.chmod(top, 0o755)
        os.chmod(broker_dir, 0o755)
        os.chmod(broker_dir / "broker.sock", 0o666)
        sock_path = str(broker_dir / "broker.sock")
        code = (
            "import socket\n"
            "s = socket.socket(socket.AF_UNIX)\n"
            "s.settimeout(5)\n"
            f"s.connect({sock_path!r})\n"
            "try:\n"
            '    s.sendall(b\'{"op": "ping"}\\n\')\n'
            "    print('closed' if s.recv(100) == b'' else 'answered')\n"
            "except (BrokenPipeError, ConnectionResetError):\n"
            "    print('closed')\n"
        )
        proc = await asyncio.create_subprocess_exec(
            other_python,
            "-S",
            "-c",
            code,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            user=65534,
            cwd="/",
        )
        out, err = await asyncio.wait_for(proc.communicate(), 30)
        assert proc.returncode == 0, err.decode()
        assert out.strip() == b"closed"  # connected (modes allowed it), then refused
        assert b"refused a connection from another user" in _read(broker_dir / "broker.log")
        # The owner is still served (the broker does not mind its directory's mode).
        os.chmod(broker_dir, 0o700)
        async with broker_session(group.endpoint, cfg(broker_dir)) as r:
            assert await SanOps(r, 100).group_ip() == "127.0.0.1"
    finally:
        pid = _pid(broker_dir)
        if pid is not None:
            _stop(pid)
        _reap()
        shutil.rmtree(top, ignore_errors=True)


async def test_concurrent_commands_on_one_borrowed_session(group: Group, broker_dir: Path) -> None:
    async with broker_session(group.endpoint, cfg(broker_dir)) as r:
        ops = SanOps(r, 100)
        await ops.create_volume(VolumeSpec("cc-1", 100))
        results = await asyncio.gather(
            ops.group_ip(), ops.volume_iqn("cc-1"), ops.pool_capacity("default"), ops.group_ip()
        )
    assert results[0] == results[3] == "127.0.0.1"
    assert isinstance(results[1], str) and results[1].endswith("-cc-1")
    assert results[2].total_mb > 0
