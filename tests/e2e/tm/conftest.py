"""One embedded rig (fake group + tgtd + two namespaced hosts) for the whole TM tier.

``lifecycle_rig`` is the same suite's view of a rig (rig.lifecycle.LifecycleRig), once
per rig: ``rig=embedded`` (this tier's rig) and ``rig=docker`` (the container
topology of tests/e2e/conftest.py, marked ``docker``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from rig.embedded import EmbeddedRig
from rig.lifecycle import EmbeddedLifecycle, LifecycleRig
from rig.need import need, need_executable


def need_embedded_rig() -> None:
    need(os.geteuid() == 0, "the embedded rig needs root")
    for exe, pkg in (
        ("ip", "iproute2"),
        ("unshare", "util-linux"),
        ("nsenter", "util-linux"),
        ("losetup", "util-linux"),
        ("sshd", "openssh-server"),
        ("ssh", "openssh-client"),
        ("qemu-storage-daemon", "qemu-system-common"),
        ("iscsi-ls", "libiscsi-bin"),
        ("tgtd", "tgt"),
        ("tgtadm", "tgt"),
    ):
        need_executable(exe, pkg)
    need(Path("/dev/fuse").exists(), "/dev/fuse is missing (FUSE)")
    need(Path("/dev/loop-control").exists(), "/dev/loop-control is missing (loop)")


@pytest.fixture(scope="session")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedRig]:
    need_embedded_rig()
    r = EmbeddedRig(tmp_path_factory.mktemp("tmrig"))
    r.up()
    try:
        yield r
    finally:
        r.down()


@pytest.fixture(
    scope="session",
    params=[
        pytest.param("embedded", id="rig=embedded"),
        pytest.param("docker", id="rig=docker", marks=pytest.mark.docker),
    ],
)
def lifecycle_rig(request: pytest.FixtureRequest) -> LifecycleRig:
    if request.param == "embedded":
        return EmbeddedLifecycle(request.getfixturevalue("rig"))
    lifecycle: LifecycleRig = request.getfixturevalue("docker_lifecycle")
    return lifecycle
