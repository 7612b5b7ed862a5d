"""Helpers of the kernel-guest tier.

The session fixtures (``guest_image``, ``guest_vm``, ``guest_eql``, ``lio``,
``new_volume``) live in :mod:`rig.guest.pytest_plugin`, registered once as a plugin
(by ``tests/integration/conftest.py`` and ``tests/e2e/conftest.py``) so that every
directory, the TM lifecycle suite's ``rig=guest`` included, shares one booted guest.
"""

from __future__ import annotations

import secrets

from eqliscsi.secret import Secret
from rig.guest.pytest_plugin import VOLUME_BYTES
from rig.targets.base import ChapAccount

# The guest's own initiator name (written by the build into initiatorname.iscsi).
GUEST_INITIATOR = "iqn.2026-11.test.eqliscsi:guest"
HOST_INITIATOR = "iqn.2026-11.test.eqliscsi:host"
OTHER_INITIATOR = "iqn.2026-11.test.eqliscsi:stranger"

__all__ = [
    "GUEST_INITIATOR",
    "HOST_INITIATOR",
    "OTHER_INITIATOR",
    "VOLUME_BYTES",
    "chap",
    "new_iqn",
]


def new_iqn() -> str:
    return f"iqn.2001-05.com.equallogic:0-test-{secrets.token_hex(4)}"


def chap(user: str) -> ChapAccount:
    # 16 hex digits: LIO wants at least 12 bytes for a CHAP secret to be sane.
    return ChapAccount(user, Secret(secrets.token_hex(8).encode(), origin=f"test {user}"))
