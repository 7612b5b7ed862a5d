"""One embedded rig (fake group + tgtd + two namespaced hosts) for the whole TM tier.

``lifecycle_rig`` is the same suite's view of a rig (rig.lifecycle.LifecycleRig), once
per rig: ``rig=embedded`` (this tier's rig), ``rig=docker`` (the container topology
of tests/e2e/conftest.py, marked ``docker``) and ``rig=guest`` (the kernel guest as a
real host h1, rig.guest.lifecycle, marked ``guest``).

Package scope: the guest rig is undone when this directory is done (its sessions
logged out, its volumes deleted), before the guest tier's own tests use the guest.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rig.embedded import EmbeddedRig
from rig.guest.fake_group import InGuestGroup
from rig.guest.lifecycle import GuestLifecycle
from rig.guest.vm import GuestVM
from rig.lifecycle import EmbeddedLifecycle, LifecycleRig
from rig.need import need, need_executable


def need_standin_hosts(why: str) -> None:
    """What the rig's namespaced stand-in hosts (rig.hosts) need from this machine."""
    need(os.geteuid() == 0, why)
    for exe, pkg in (
        ("ip", "iproute2"),
        ("unshare", "util-linux"),
        ("nsenter", "util-linux"),
        ("losetup", "util-linux"),
        ("sshd", "openssh-server"),
        ("ssh", "openssh-client"),
        ("qemu-storage-daemon", "qemu-system-common"),
        ("iscsi-ls", "libiscsi-bin"),
    ):
        need_executable(exe, pkg)
    need(Path("/dev/fuse").exists(), "/dev/fuse is missing (FUSE)")
    need(Path("/dev/loop-control").exists(), "/dev/loop-control is missing (loop)")


def need_embedded_rig() -> None:
    need_standin_hosts("the embedded rig needs root")
    need_executable("tgtd", "tgt")
    need_executable("tgtadm", "tgt")


@pytest.fixture(scope="session")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedRig]:
    need_embedded_rig()
    r = EmbeddedRig(tmp_path_factory.mktemp("tmrig"))
    r.up()
    try:
        yield r
    finally:
        r.down()


@pytest.fixture(scope="package")
def guest_lifecycle(
    guest_vm: GuestVM, guest_eql: InGuestGroup, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GuestLifecycle]:
    """The kernel guest as ``rig=guest`` (rig.guest.lifecycle), on the session's guest.

    Package scope, defined here: it is undone (sessions logged out, its volumes
    deleted, the node setup removed) when this directory is done, so the guest
    tier's other tests (the LIO half of the client suite lists discovery) find the
    guest and the group as before.  A package fixture defined in a plugin would
    live until the end of the session (pytest scopes it to the plugin's package).
    """
    need_standin_hosts("the stand-in host h2 needs root (namespaces, loop devices)")
    t0 = time.monotonic()
    rig = GuestLifecycle(guest_vm, guest_eql, tmp_path_factory.mktemp("guest-lifecycle")).setup()
    print(
        f"\nguest: lifecycle rig (stand-in h2, node setup, portal forward) "
        f"{time.monotonic() - t0:.1f} s"
    )
    try:
        yield rig
    finally:
        rig.close()


# The conventions the shared suite runs on the kernel guest.  Each lifecycle costs the
# emulated guest about a minute of logins and udev, so two of five: 7.0, what
# OpenNebula ships today (stdin documents, tagged framing), and 4.4, the oldest and
# most different (argv documents, marker framing, the migration template in argv,
# the `sh -c ...; echo ExitCode` wrapper, no SNAP_ID in cpds).  The guest's hosts
# admit oneadmin only, so both go through sudo and the shipped sudoers rule.  The
# profiles in between differ only in what the front-end passes, which the embedded
# and docker rigs cover.
GUEST_PROFILES = frozenset({"4.4", "7.0"})


@pytest.fixture(
    scope="package",
    params=[
        pytest.param("embedded", id="rig=embedded"),
        pytest.param("docker", id="rig=docker", marks=pytest.mark.docker),
        pytest.param("guest", id="rig=guest", marks=[pytest.mark.guest, pytest.mark.lio]),
    ],
)
def lifecycle_rig(request: pytest.FixtureRequest) -> LifecycleRig:
    if request.param == "embedded":
        return EmbeddedLifecycle(request.getfixturevalue("rig"))
    lifecycle: LifecycleRig = request.getfixturevalue(f"{request.param}_lifecycle")
    return lifecycle


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Deselect the rig=guest cases of profiles outside GUEST_PROFILES (see above)."""
    keep: list[pytest.Item] = []
    drop: list[pytest.Item] = []
    for item in items:
        params: dict[str, Any] = getattr(getattr(item, "callspec", None), "params", {})
        if params.get("lifecycle_rig") == "guest" and params.get("profile") not in GUEST_PROFILES:
            drop.append(item)
        else:
            keep.append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep
