"""The fake EqualLogic group with the LIO data plane, run *inside* the kernel guest.

``python -m rig.fake_eql --target-backend lio`` runs in the guest from the project
tree shared read-only over 9p, so it configures LIO in-process
(:class:`rig.targets.lio_local.LocalLioBackend`).  The host reaches its CLI only
through QEMU's 127.0.0.1 forward to guest port 8022 (``vm.ports.eql``) and its
volumes through the iSCSI forward (``vm.ports.iscsi``).

One group per pytest session (the ``guest_eql`` fixture): under TCG the start
(python imports, asyncssh host key) costs the guest tens of seconds, and the tests
that use it make their own volumes and CHAP users with random names.
"""

from __future__ import annotations

import secrets
import shlex
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from eqliscsi.errors import RigError
from eqliscsi.iscsi_discovery import Portal
from eqliscsi.san.endpoint import HostKeyPolicy, SanEndpoint
from eqliscsi.secret import Secret
from rig.guest.vm import GUEST_EQL_PORT, GuestVM

__all__ = ["ACCOUNT", "GROUP", "InGuestGroup", "in_guest_group"]

GROUP, ACCOUNT = "grp0", "grpadmin"
RUN = "/run/eqliscsi-fake"
START_TIMEOUT_S = 120.0


class InGuestGroupError(RigError):
    reference = "guest-fake-group-failed"


@dataclass(frozen=True)
class InGuestGroup:
    vm: GuestVM
    endpoint: SanEndpoint
    pid: int

    @property
    def portal(self) -> Portal:
        """The group portal as the host reaches it (QEMU's forward to LIO's 3260)."""
        return Portal("127.0.0.1", self.vm.ports.iscsi)

    @property
    def lun_dir(self) -> str:
        """Where the fake keeps its backing files, inside the guest."""
        return f"{RUN}/state/luns"


@contextmanager
def in_guest_group(vm: GuestVM, workdir: Path) -> Iterator[InGuestGroup]:
    """Start the fake group in ``vm``; on exit SIGTERM it (it deletes its LIO targets)."""
    if not vm.ports.eql:
        raise InGuestGroupError(
            "The guest was booted without the fake group's forward; boot it with GuestPorts.eql."
        )
    password = secrets.token_hex(12)
    vm.install_file(f"{RUN}/password", password, mode=0o600)
    argv = [
        "python3", "-m", "rig.fake_eql", "--state", f"{RUN}/state",
        "--listen", f"0.0.0.0:{GUEST_EQL_PORT}", "--group-name", GROUP, "--account", ACCOUNT,
        "--password-file", f"{RUN}/password", "--target-backend", "lio",
        "--iscsi-portal", "127.0.0.1:3260",
    ]  # fmt: skip
    out = vm.ssh(
        ["sh", "-euc", f"cd /opt/eqliscsi && PYTHONPATH=/opt/eqliscsi setsid {shlex.join(argv)} "
         f"> {RUN}/log 2>&1 < /dev/null & echo $!"],
    ).stdout  # fmt: skip
    pid = int(out.strip())
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            log = vm.ssh(["cat", f"{RUN}/log"], check=False).stdout
            if log.startswith("ready "):
                break
            if vm.ssh(["kill", "-0", str(pid)], check=False).returncode != 0:
                raise InGuestGroupError(
                    f"The fake group died in the guest ({log[-300:]!r}); read {RUN}/log there."
                )
            if time.monotonic() > deadline:
                raise InGuestGroupError(
                    f"The fake group did not start in the guest within {START_TIMEOUT_S:.0f} s "
                    f"({log[-300:]!r}); read {RUN}/log there."
                )
            time.sleep(1)
        pub = vm.ssh(["cat", f"{RUN}/state/ssh_host_ed25519_key.pub"]).stdout.split()
        workdir.mkdir(parents=True, exist_ok=True)
        known = workdir / "known_hosts"
        known.write_text(f"[127.0.0.1]:{vm.ports.eql} {pub[0]} {pub[1]}\n")
        ep = SanEndpoint(
            host="127.0.0.1",
            port=vm.ports.eql,
            username=ACCOUNT,
            password=Secret(password.encode(), origin="in-guest group password"),
            known_hosts=str(known),
            host_key_policy=HostKeyPolicy.KNOWN_HOSTS,
            group=GROUP,
            # Under TCG the guest's asyncssh spends seconds on each key exchange.
            connect_timeout=120.0,
            command_timeout=120.0,
        )
        yield InGuestGroup(vm, ep, pid)
    finally:
        vm.ssh(["kill", str(pid)], check=False)
        for _ in range(60):
            if vm.ssh(["kill", "-0", str(pid)], check=False).returncode != 0:
                break
            time.sleep(0.5)
