"""``validate_many``'s capacity probe: TEST UNIT READY + READ CAPACITY(16), no INQUIRY.

The sans-IO fake target is served on 127.0.0.1 (``serve.py``), so the real adapter
runs unchanged; the table covers the cases the probe must still get right without
INQUIRY: a unit attention after login (taken by TEST UNIT READY), a unit attention on
READ CAPACITY(16) as well (re-run alone), an absent LUN (05/25/00 -> LunNotPresent)
and what stays empty in LunInfo.
"""

from __future__ import annotations

import pytest

from eqliscsi.iscsi_discovery import (
    LunInfo,
    ScsiCommandFailed,
    ValidationRequest,
    login,
    validate_many,
)
from eqliscsi.iscsi_discovery._asyncio import LunNotPresent
from eqliscsi.iscsi_discovery._pdu import ScsiCommand
from tests.unit.iscsi.fake_target import FakeTarget, Lun, TargetConfig
from tests.unit.iscsi_capacity.serve import TwoAttentions, serve

IQN = "iqn.2026-01.test.eqliscsi.capacity:vol"
TUR, INQUIRY, RC16 = 0x00, 0x12, 0x9E


DISK = Lun(blocks=2048, block_size=4096)


def _bare(lun: int, size: int, block: int) -> LunInfo:
    """What the capacity probe can know: no INQUIRY, so no vendor, product, serial."""
    return LunInfo(lun, size, block, vendor="", product="", serial="", device_type=0,
                   identifiers=())  # fmt: skip


@pytest.mark.parametrize(
    ("unit_attention", "kind", "lun", "expected", "commands"),
    [
        (False, FakeTarget, 1, _bare(1, 2048 * 4096, 4096),
         [TUR, RC16]),
        # tgt queues 06/29/00 after every login: TEST UNIT READY takes it.
        (True, FakeTarget, 1, _bare(1, 2048 * 4096, 4096),
         [TUR, RC16]),
        # READ CAPACITY(16) hit by a unit attention too: re-run alone, and then good.
        (True, TwoAttentions, 1, _bare(1, 2048 * 4096, 4096),
         [TUR, RC16, RC16]),
        # No LUN 5: both commands answer 05/25/00 (LOGICAL UNIT NOT SUPPORTED).
        (False, FakeTarget, 5, LunNotPresent, [TUR, RC16]),
        (True, FakeTarget, 5, LunNotPresent, [TUR, RC16]),
    ],
    ids=["disk", "unit-attention-after-login", "unit-attention-twice", "absent-lun",
         "absent-lun-with-unit-attention"],
)  # fmt: skip
async def test_capacity_probe(
    unit_attention: bool,
    kind: type[FakeTarget],
    lun: int,
    expected: LunInfo | type[Exception],
    commands: list[int],
) -> None:
    cfg = TargetConfig(targets={IQN: {1: DISK}}, unit_attention=unit_attention, window=2)
    async with serve(cfg, kind) as served:
        (result,) = await validate_many(
            [ValidationRequest(served.address, IQN, lun=lun)], processes=1, timeout=5
        )
        if isinstance(expected, LunInfo):
            assert result.ok and result.result is not None, result.error
            assert result.result.luns == (expected,)
        else:
            assert isinstance(result.error, expected) and result.result is None
        assert served.commands() == commands  # never INQUIRY
        assert not any(t.violations for t in served.targets)


async def test_capacity_probe_of_a_failing_lun_names_read_capacity() -> None:
    # A LUN whose READ CAPACITY(16) fails for another reason (here: a unit attention
    # that never clears) is an error naming the command, never a size of 0.
    class _Stuck(FakeTarget):
        def _scsi(self, cmd: ScsiCommand) -> None:
            self.ua_pending = {1}
            super()._scsi(cmd)

    cfg = TargetConfig(targets={IQN: {1: DISK}}, window=2)
    async with serve(cfg, _Stuck) as served:
        (result,) = await validate_many(
            [ValidationRequest(served.address, IQN, lun=1)], processes=1, timeout=5
        )
        assert isinstance(result.error, ScsiCommandFailed)
        assert not isinstance(result.error, LunNotPresent)
        assert "READ CAPACITY(16)" in str(result.error)


async def test_probe_without_lun_keeps_inquiry() -> None:
    # Without a LUN number the disk LUNs are picked by INQUIRY's device type, so that
    # path still sends INQUIRY and fills vendor and product.
    cfg = TargetConfig(targets={IQN: {1: DISK}}, window=2)
    async with serve(cfg) as served:
        (result,) = await validate_many([ValidationRequest(served.address, IQN)], processes=1)
        assert result.result is not None, result.error
        (info,) = result.result.luns
        assert (info.vendor, info.product, info.size_bytes) == ("EQLOGIC", "100E-00", 2048 * 4096)
        assert INQUIRY in served.commands()


async def test_lun_capacity_on_an_open_session() -> None:
    cfg = TargetConfig(targets={IQN: {1: DISK}}, window=2)
    async with serve(cfg) as served, login(served.address, IQN) as session:
        info = await session.lun_capacity(1)
        assert (info.size_bytes, info.block_size, info.device_type) == (2048 * 4096, 4096, 0)
