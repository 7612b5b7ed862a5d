"""What the TM lifecycle suite needs from a rig, so one suite runs on every rig.

A rig has a front-end that runs the remotes the way oned does (:class:`Frontend`: the
:class:`rig.oned.OnedSimulator` calls, wherever the simulator runs), two hypervisor
hosts known to the front-end as ``h1`` and ``h2`` (``fe`` is the front-end itself, in
``NO_ISCSI``), and a group whose saved model says which volumes exist.  The suite
judges with the hosts' own tools only: ``iscsiadm -m session``, ``readlink``, and
``dd`` with ``O_DIRECT`` through the block device a login made.

Two implementations: :class:`EmbeddedLifecycle` here (namespaced hosts reached with
OpenSSH, the simulator in this process's checkout) and
:class:`rig.docker.lifecycle.DockerLifecycle` (the container topology, the simulator in
the frontend container, the hosts' view through ``docker exec``).
"""

from __future__ import annotations

import base64
import json
import secrets
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from eqliscsi.opennebula.devname import volume_from_iqn
from eqliscsi.secret import Secret
from rig.embedded import EmbeddedRig
from rig.oned import (
    DatastoreSpec,
    DsOutcome,
    ImageSpec,
    OnedProfile,
    OnedSimulator,
    TmOutcome,
    VmSpec,
)

__all__ = [
    "BLOCK",
    "HOSTS",
    "EmbeddedLifecycle",
    "Frontend",
    "HostResult",
    "LifecycleRig",
    "block_size",
    "read_block",
    "session_volumes",
    "write_marker",
]

HOSTS = ("h1", "h2")  # the names oned (and the TM argv) know the hypervisors by
BLOCK = 4096
ISCSIADM_NO_OBJS_FOUND = 21  # open-iscsi's "no active sessions"


@dataclass(frozen=True, slots=True)
class HostResult:
    returncode: int
    stdout: bytes
    stderr: bytes


class Frontend(Protocol):
    """The oned simulator's calls, as the suite makes them (see rig.oned.simulator)."""

    @property
    def profile(self) -> OnedProfile: ...

    def ds_document(
        self, image: ImageSpec | None, datastore: DatastoreSpec | None = None
    ) -> str: ...

    def run_ds(self, action: str, document: str | bytes, object_id: int) -> DsOutcome: ...

    def run_tm(
        self, action: str, args: Sequence[str], *, sys_tm: str | None = None
    ) -> TmOutcome: ...

    def run_migrate(
        self,
        action: str,
        *,
        src: str,
        dst: str,
        vm_dir: str,
        vm: VmSpec,
        ds_id: int = 0,
        sys_tm: str = "shared",
    ) -> TmOutcome: ...

    def register_vm(self, vm: VmSpec) -> None: ...

    def driver_log(self) -> str:
        """The driver's log file on the front-end (empty when nothing was logged)."""
        ...


class LifecycleRig(Protocol):
    """A group, a front-end and hosts ``h1``/``h2``, judged from the hosts themselves."""

    @property
    def name(self) -> str: ...

    def simulator(
        self, profile: str, *, name: str | None = None, as_oneadmin: bool = False
    ) -> Frontend:
        """A front-end remotes tree for ``profile`` (one per profile and name).

        ``as_oneadmin``: the driver reaches the hosts as oneadmin (iscsiadm through
        ``sudo -n``) rather than root; a rig whose hosts only admit oneadmin always does.
        """
        ...

    def put_vm(self, sim: Frontend, vm: VmSpec) -> None:
        """What oned would answer to ``onevm show -x`` for this VM."""
        ...

    def run(self, host: str, command: str) -> HostResult:
        """``command`` (a shell line) as root on host ``h1``/``h2``."""
        ...

    def volumes(self) -> dict[str, dict[str, Any]]:
        """The group's volumes by name, as it saved them (written before every reply)."""
        ...

    def chap_secret(self) -> Secret:
        """The hosts' CHAP secret (the suite checks it never reaches a log)."""
        ...


def sessions(rig: LifecycleRig, host: str) -> list[str]:
    """Target IQNs of ``iscsiadm -m session`` on ``host`` (the host's own view)."""
    r = rig.run(host, "iscsiadm -m session")
    if r.returncode == ISCSIADM_NO_OBJS_FOUND:
        return []
    assert r.returncode == 0, r.stderr
    return [line.split()[3] for line in r.stdout.decode().splitlines() if line.strip()]


def session_volumes(rig: LifecycleRig, host: str) -> list[str]:
    return sorted(str(volume_from_iqn(iqn)) for iqn in sessions(rig, host))


def write_marker(rig: LifecycleRig, host: str, path: str, offset_blocks: int = 0) -> bytes:
    """A fresh marker written with O_DIRECT at block ``offset_blocks`` of ``path``."""
    marker = f"eqliscsi-{secrets.token_hex(8)}".encode()
    # The bytes travel base64-encoded in the command line: rigs differ in how stdin
    # reaches a host (ssh, docker exec), a command line works the same everywhere.
    data = base64.b64encode(marker).decode()
    r = rig.run(
        host,
        f"printf %s {data} | base64 -d | dd of={shlex.quote(path)} bs={BLOCK} "
        f"seek={offset_blocks} count=1 conv=sync,fsync,notrunc oflag=direct status=none",
    )
    assert r.returncode == 0, r.stderr
    return marker


def read_block(rig: LifecycleRig, host: str, path: str, offset_blocks: int = 0) -> bytes:
    r = rig.run(
        host,
        f"dd if={shlex.quote(path)} bs={BLOCK} skip={offset_blocks} count=1 iflag=direct "
        "status=none",
    )
    assert r.returncode == 0, r.stderr
    return r.stdout


def block_size(rig: LifecycleRig, host: str, path: str) -> int:
    """Size in bytes of the block device ``path`` leads to, as the host's kernel sees it
    (0 when ``path`` does not lead to a block device)."""
    q = shlex.quote(path)
    r = rig.run(host, f"if test -b {q}; then blockdev --getsize64 {q}; else echo 0; fi")
    assert r.returncode == 0, r.stderr
    return int(r.stdout.decode().strip())


def link_target(rig: LifecycleRig, host: str, path: str) -> str:
    return rig.run(host, f"readlink {shlex.quote(path)} || true").stdout.decode().strip()


class EmbeddedLifecycle:
    """The embedded rig (rig.embedded) as a :class:`LifecycleRig`."""

    name = "embedded"

    def __init__(self, rig: EmbeddedRig) -> None:
        self.rig = rig

    def simulator(
        self, profile: str, *, name: str | None = None, as_oneadmin: bool = False
    ) -> OnedSimulator:
        # The simulator in this process's checkout is itself a Frontend.
        return self.rig.simulator(profile, name=name, as_oneadmin=as_oneadmin)

    def put_vm(self, sim: Frontend, vm: VmSpec) -> None:
        sim.register_vm(vm)

    def run(self, host: str, command: str) -> HostResult:
        if host not in HOSTS:
            raise ValueError(f"no host {host!r} in this rig")
        r = self.rig.ssh(host, command)
        return HostResult(r.returncode, r.stdout, r.stderr)

    def volumes(self) -> dict[str, dict[str, Any]]:
        data = json.loads((self.rig.san_state / "san.json").read_text())
        return {v["name"]: v for v in data["volumes"]}

    def chap_secret(self) -> Secret:
        return Secret.from_file(self.rig.chap_file)
