"""The in-process server API with an asyncssh client and a recording data plane."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from pathlib import Path

import asyncssh
import pytest

from eqliscsi.secret import Secret
from rig.fake_eql.dataplane import DataPlane, RecordingBackend
from rig.fake_eql.faults import Faults
from rig.fake_eql.server import FakeEql

PASSWORD = "inproc-password-1"
PROMPT = re.compile(r"(?m)^g1(\([^)]*\))?> ")


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[tuple[FakeEql, RecordingBackend, int]]:
    backend = RecordingBackend()
    fake = FakeEql(
        tmp_path,
        group_name="g1",
        account="admin",
        password=Secret(PASSWORD.encode()),
        dataplane=DataPlane(backend, tmp_path / "luns"),
    )
    _, port = await fake.start("127.0.0.1", 0)
    try:
        yield fake, backend, port
    finally:
        await fake.close()


async def _connect(port: int) -> asyncssh.SSHClientConnection:
    return await asyncssh.connect(
        "127.0.0.1", port, username="admin", password=PASSWORD, known_hosts=None
    )


async def _until_prompt(reader: asyncssh.SSHReader[str], count: int = 1) -> str:
    buf = ""
    async with asyncio.timeout(10):
        while len(PROMPT.findall(buf)) < count:
            chunk = await reader.read(4096)
            assert chunk, buf
            buf += chunk
    return buf


async def test_target_exists_before_the_iqn_is_printed(
    served: tuple[FakeEql, RecordingBackend, int],
) -> None:
    fake, backend, port = served
    async with await _connect(port) as conn:
        proc = await conn.create_process(term_type="vt100", term_size=(255, 24))
        await _until_prompt(proc.stdout)
        proc.stdin.write("cli-settings events off\r")
        await _until_prompt(proc.stdout)
        proc.stdin.write("volume create v1 45\r")
        # the reply and its prompt are one write, made after the data plane ran
        iqn = re.search(r"iSCSI target name is (\S+)\.", await _until_prompt(proc.stdout))
        assert iqn and iqn[1] in backend.targets
        assert backend.targets[iqn[1]].backing_file.stat().st_size == 45 * 1024 * 1024
        # two commands in one write: the second's target must appear too
        proc.stdin.write("volume create v2 15\rvolume create v3 15\r")
        await _until_prompt(proc.stdout, count=2)
        assert {fake.san.volumes[n].iqn for n in ("v2", "v3")} <= set(backend.targets)
        proc.stdin.write("volume select v1 offline\r")
        await _until_prompt(proc.stdout)
        assert iqn[1] not in backend.targets
        proc.close()
    assert fake.max_sessions_seen == 1


async def test_python_fault_api(served: tuple[FakeEql, RecordingBackend, int]) -> None:
    fake, _, port = served
    fake.set_faults(Faults(error_at="whoami", error_text="Injected."))
    async with await _connect(port) as conn:
        proc = await conn.create_process(term_type="vt100")
        await _until_prompt(proc.stdout)
        proc.stdin.write("whoami\r")
        assert "% Error - Injected.\r\n" in await _until_prompt(proc.stdout)
        fake.set_faults(Faults(stall_at="whoami"))
        proc.stdin.write("whoami\r")
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.5):
                await _until_prompt(proc.stdout)
        proc.close()


async def test_exec_request_runs_one_command(
    served: tuple[FakeEql, RecordingBackend, int],
) -> None:
    _, _, port = served
    async with await _connect(port) as conn:
        result = await conn.run("whoami", timeout=10)
    assert result.exit_status == 0
    assert isinstance(result.stdout, str) and "\r\nadmin\r\n" in result.stdout
