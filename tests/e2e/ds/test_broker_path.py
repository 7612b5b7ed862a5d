"""The remotes on the broker path: EQLISCSI_BROKER_DIR set, one warm CLI session reused."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rig.fake_eql import server as fake_server
from rig.fake_eql.shell import EqlShell
from rig.oned import ImageSpec, OnedSimulator
from tests.e2e.ds.helpers import DS, DataGroup, SecretWatch, make_qcow2

pytestmark = [pytest.mark.tgt]


@pytest.fixture
def broker_dir(tmp_path: Path) -> Iterator[Path]:
    directory = tmp_path / "broker"
    try:
        yield directory
    finally:
        # The broker would exit by itself after 120 s idle; stop ours now, and only ours.
        pidfile = directory / "broker.pid"
        if pidfile.exists():
            pid = int(pidfile.read_text().strip())
            cmdline = Path(f"/proc/{pid}/cmdline")
            if cmdline.exists() and b"eqliscsi.san.broker" in cmdline.read_bytes():
                os.kill(pid, signal.SIGTERM)


async def test_actions_through_the_broker(
    tmp_path: Path,
    data_group: DataGroup,
    broker_dir: Path,
    secret_watch: SecretWatch,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    shells: list[EqlShell] = []

    class Counting(EqlShell):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            shells.append(self)

    monkeypatch.setattr(fake_server, "EqlShell", Counting)
    env = {**data_group.env, "EQLISCSI_BROKER_DIR": str(broker_dir)}
    sim = OnedSimulator.create("7.0", tmp_path / "sim", conf=data_group.conf, extra_env=env)
    src = make_qcow2(tmp_path / "b.qcow2", size="4M", pattern=((0x61, 0, 64),))
    for _ in range(3):
        mon = await asyncio.to_thread(sim.run_ds, "monitor", sim.ds_document(None, DS), 100)
        assert mon.ok, mon.stderr
    out = await asyncio.to_thread(
        sim.run_ds, "cp", sim.ds_document(ImageSpec(id=3, name="b", path=str(src)), DS), 3
    )
    assert out.ok, out.stderr
    gone = await asyncio.to_thread(
        sim.run_ds, "rm", sim.ds_document(ImageSpec(id=3, source="b.3"), DS), 3
    )
    assert gone.ok, gone.stderr
    assert (broker_dir / "broker.pid").exists()  # the broker served them
    # Five actions, one warm CLI session: the direct path would have opened five.
    assert len(shells) == 1
    assert secret_watch.hits == []
