"""``validate_many``'s capacity probe against real targets (tgt; LIO in the guest tier).

With a LUN number, validation sends TEST UNIT READY and READ CAPACITY(16) only; the
cases where leaving out INQUIRY could mislead are checked on each target: the disk
(size right), an absent LUN (LunNotPresent from 05/25/00, as INQUIRY's qualifier
said before), and LUN 0, which is tgt's controller (no disk: READ CAPACITY(16) fails
and says so) but LIO's first disk.
"""

from __future__ import annotations

import pytest

from eqliscsi.iscsi_discovery import Auth, ScsiCommandFailed, ValidationRequest, validate_many
from eqliscsi.iscsi_discovery._asyncio import LunNotPresent
from rig.targets.base import TargetBackend

from .conftest import MakeDisk, chap
from .test_client import IQN, SECRET, USER, lib_portal, one_way

pytestmark: list[pytest.MarkDecorator] = []

SIZE = 24 << 20


@pytest.mark.parametrize(
    ("which", "with_chap"),
    [("disk", False), ("disk", True), ("absent", False), ("lun-0", True)],
    ids=["disk", "disk-chap", "absent-lun", "lun-0"],
)
async def test_capacity_probe(
    backend: TargetBackend, make_disk: MakeDisk, which: str, with_chap: bool
) -> None:
    backend.create_target(IQN, make_disk(size_bytes=SIZE))
    if with_chap:
        backend.set_chap(IQN, chap(USER, SECRET), None)
    disk_lun = backend.lun_of(IQN)
    lun = {"disk": disk_lun, "absent": disk_lun + 7, "lun-0": 0}[which]
    auth = one_way() if with_chap else Auth()
    request = ValidationRequest(lib_portal(backend.portal), IQN, auth, lun=lun)
    (result,) = await validate_many([request], processes=1, timeout=10)
    if lun == disk_lun:
        assert result.ok and result.result is not None, result.error
        (info,) = result.result.luns
        assert (info.lun, info.size_bytes, info.device_type) == (lun, SIZE, 0)
        assert info.block_size > 0 and info.vendor == "" and info.serial == ""
    elif which == "absent":
        assert isinstance(result.error, LunNotPresent), result.error
    else:  # tgt's LUN 0: the controller, which has no capacity
        assert isinstance(result.error, ScsiCommandFailed), result.error
        assert not isinstance(result.error, LunNotPresent)
        assert "READ CAPACITY(16)" in str(result.error)
