"""The kernel guest as a :class:`rig.lifecycle.LifecycleRig`: ``h1`` is a real host.

* The front-end is the oned simulator in this process's checkout (as in
  :class:`rig.lifecycle.EmbeddedLifecycle`): remotes run as subprocesses here.
* The group is the fake EqualLogic group running in the guest with LIO
  (:mod:`rig.guest.fake_group`, the session's ``guest_eql``); the suite reads its
  saved model (``san.json``) in the guest.
* ``h1`` is the guest as an OpenNebula node: the driver logs in as **oneadmin** over
  OpenSSH through QEMU's 127.0.0.1 forward and meets open-iscsi's real ``iscsiadm``
  and ``iscsid`` through ``sudo -n`` and the shipped sudoers rule, the kernel's
  iscsi_tcp and sd, and udev with the shipped rule and helper.  The suite judges h1
  as root over the test's own SSH connection, with the host's own tools.
* ``h2`` is a stand-in host (rig.hosts: its own network namespace, sshd, the
  iscsiadm stand-in whose data path is qemu-storage-daemon + a loop device).  A
  second guest would cost a second boot (16-36 s under TCG, and as much memory
  again); a second initiator inside the guest would share its iscsid and /dev, so it
  would not be a second host.  Migrations and stop/resume therefore cross from the
  real initiator to the stand-in and back, and bytes written on one are read on the
  other.

One portal for everyone.  The driver gives hosts ``EQL_PORTAL``, and open-iscsi keys
its node records by the address SendTargets advertises; LIO's wildcard portal
advertises the address the connection arrived on.  So the portal is the stand-in
hosts' bridge address ``10.254.S.1:3260``: in the guest it is an address on ``lo``
(LIO answers there natively), and on this machine an OpenSSH local forward bound to
the bridge address carries connections into the guest, where sshd connects to the
same address.  Every initiator reaches LIO at, and is told, ``10.254.S.1:3260``.  No
traffic leaves 127.0.0.1, the rig's bridge and the guest.

The hosts only admit the driver as oneadmin (as the docker rig's do): every
convention goes through sudo, whatever ``as_oneadmin`` asks.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

from eqliscsi.errors import RigError
from eqliscsi.opennebula import iscsiadm as ia
from eqliscsi.san.broker_client import run_action
from eqliscsi.san.ops import CliRunner, SanOps
from eqliscsi.secret import Secret
from rig.guest.fake_group import RUN, InGuestGroup
from rig.guest.vm import GuestVM
from rig.hosts import HostRig
from rig.hosts.rig import DRIVER_UID, NODE_AUTH_HELPER, REMOTES_TM
from rig.lifecycle import HOSTS, Frontend, HostResult
from rig.oned import IMAGE_DS, SYSTEM_DS, OnedSimulator, VmSpec

__all__ = ["GuestLifecycle", "GuestLifecycleError"]

TUNNEL_TIMEOUT_S = 30.0
HOST_COMMAND_TIMEOUT_S = 180.0
STANDIN = "h1"  # the stand-in's own name in its HostRig; the suite calls it h2
# Where docs/host-iscsi.md installs the host-side pieces.
_INSTALL = {
    "eqliscsi-node-auth": (ia.DEFAULT_AUTH_HELPER, 0o755),
    "eqliscsi-udev-name": ("/usr/lib/udev/eqliscsi-udev-name", 0o755),
    "99-eqliscsi.rules": ("/etc/udev/rules.d/99-eqliscsi.rules", 0o644),
}


class GuestLifecycleError(RigError):
    reference = "guest-lifecycle-failed"


class GuestLifecycle:
    """See the module docstring; :meth:`setup` once, :meth:`close` at the end."""

    name = "guest"

    def __init__(self, vm: GuestVM, group: InGuestGroup, directory: Path) -> None:
        self.vm = vm
        self.group = group
        self.directory = directory
        self.fe = directory / "fe"
        self.hosts = HostRig(directory / "hosts", count=1, data_lun=0)  # LIO serves LUN 0
        self.chap_user = f"rig-guest-{secrets.token_hex(3)}"
        self.chap_file = self.fe / "chap_secret"
        self._tunnel: subprocess.Popen[bytes] | None = None
        self._sims: dict[str, OnedSimulator] = {}
        self._before: set[str] = set()  # the group's volumes before this rig made any

    # ------------------------------------------------------------------ setup
    def setup(self) -> GuestLifecycle:
        self.fe.mkdir(parents=True, exist_ok=True)
        self.fe.chmod(0o700)
        self.hosts.up()
        try:
            self._setup()
        except BaseException:
            self.close()
            raise
        return self

    @property
    def portal(self) -> str:
        return f"{self.hosts.gateway}:3260"

    def _setup(self) -> None:
        vm, gw = self.vm, self.hosts.gateway
        self._before = set(self.volumes())
        for name, (dest, mode) in _INSTALL.items():
            vm.install_file(dest, (REMOTES_TM / name).read_text(), mode=mode)
        # The root-owned copy of the CHAP helper that the shipped sudoers rule names.
        vm.install_file(
            NODE_AUTH_HELPER, (REMOTES_TM / "eqliscsi-node-auth").read_text(), mode=0o755
        )
        # The shipped rule, unchanged: it is checked here against the real sudo and
        # the real iscsiadm's argv.
        vm.install_file(
            "/etc/sudoers.d/eqliscsi", (REMOTES_TM / "eqliscsi.sudoers").read_text(), mode=0o440
        )
        # The guest as OpenNebula's node packages leave a host: oneadmin (the packages'
        # fixed uid) with its home in /var/lib/one, in group disk, the front-end's key.
        vm.ssh(["sh", "-euc",
                "visudo -c -q -f /etc/sudoers.d/eqliscsi; "
                f"getent group oneadmin >/dev/null || groupadd -g {DRIVER_UID} oneadmin; "
                "id oneadmin >/dev/null 2>&1 || "
                f"useradd -u {DRIVER_UID} -g oneadmin -G disk -M -d /var/lib/one -s /bin/sh "
                "oneadmin; "
                f'test "$(id -u oneadmin)" = {DRIVER_UID}; '
                # Earlier tests ran as root and may have made /var/lib/one/datastores;
                # on a node it is oneadmin's, all of it.
                "mkdir -p /var/lib/one/datastores/0; chown -R oneadmin:oneadmin /var/lib/one; "
                "install -d -o oneadmin -g oneadmin -m 700 /var/lib/one/.ssh; "
                "install -o oneadmin -g oneadmin -m 600 /root/.ssh/authorized_keys "
                "/var/lib/one/.ssh/authorized_keys; "
                # a lock left by root-run scripts of other tests would lock oneadmin out
                "rm -f /run/lock/eqliscsi-iscsi.lock; "
                "udevadm control --reload; "
                f"ip addr replace {gw}/32 dev lo"])  # fmt: skip
        # The portal: an OpenSSH local forward on the bridge address into the guest.
        # Its own connection (not the multiplexed one, whose first options would win).
        self._tunnel = subprocess.Popen(
            ["ssh", "-F", "/dev/null", "-i", str(vm.image.ssh_key), "-p", str(vm.ports.ssh),
             "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes",
             "-o", "StrictHostKeyChecking=yes",
             "-o", f"UserKnownHostsFile={vm.workdir / 'known_hosts'}",
             "-o", "ExitOnForwardFailure=yes", "-o", "ServerAliveInterval=15",
             "-N", "-L", f"{gw}:3260:{gw}:3260", "root@127.0.0.1"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip
        _wait_listening(gw, 3260, self._tunnel)

        # The front-end's files: group password and CHAP secret (0600), the ssh config.
        password = self.group.endpoint.password
        if password is None:
            raise GuestLifecycleError(
                "The in-guest group's endpoint has no password; start it with in_guest_group."
            )
        _secret_file(self.fe / "eql_password", password.reveal_str())
        _secret_file(self.chap_file, secrets.token_hex(8))
        standin = self.hosts.ssh_config_oneadmin.read_text()
        if not standin.startswith(f"Host {STANDIN}\n"):
            raise GuestLifecycleError(
                "The stand-in host's ssh config has an unexpected shape; check rig.hosts."
            )
        (self.fe / "ssh_config").write_text(
            "Host h1\n  HostName 127.0.0.1\n"
            f"  Port {vm.ports.ssh}\n  User oneadmin\n"
            f"  IdentityFile {vm.image.ssh_key}\n  IdentitiesOnly yes\n"
            f"  UserKnownHostsFile {vm.workdir / 'known_hosts'}\n"
            "  StrictHostKeyChecking yes\n  BatchMode yes\n  LogLevel ERROR\n"
            # As a front-end's ~/.ssh/config often does: under TCG each key exchange
            # costs the guest a second or more.
            f"  ControlMaster auto\n  ControlPath {self.fe}/cm-%r@%h:%p\n  ControlPersist 300\n"
            + standin.replace(f"Host {STANDIN}\n", "Host h2\n", 1)
        )

        secret = Secret.from_file(self.chap_file)

        async def make_chap_user(runner: CliRunner) -> None:
            await SanOps(runner, 0).ensure_chap_user(self.chap_user, secret)

        asyncio.run(run_action(self.group.endpoint, make_chap_user))

    def conf_text(self) -> str:
        values = {
            "EQL_HOST": "127.0.0.1",
            "EQL_SSH_PORT": str(self.vm.ports.eql),
            "EQL_USER": self.group.endpoint.username,
            "EQL_PASS_FILE": str(self.fe / "eql_password"),
            "EQL_KNOWN_HOSTS": str(self.group.endpoint.known_hosts),
            "EQL_PORTAL": self.portal,
            "EQL_POOL": "default",
            # Every initiator arrives through the forward (from the bridge address, in
            # the guest), so the access record is CHAP alone.
            "EQL_SECURITY_ACCESS": f"'username {self.chap_user} authmethod chap'",
            "EQL_CHAP_USER": self.chap_user,
            "EQL_CHAP_SECRET_FILE": str(self.chap_file),
            "EQL_NODE_AUTH_HELPER": NODE_AUTH_HELPER,
            # udev under TCG: a login's link appears within seconds, rarely ten.
            "EQL_WAIT_TIME": "60",
            "EQL_MAX_SESSIONS": "4",
            "NO_ISCSI": "fe",
        }
        return "".join(f"{k}={v}\n" for k, v in values.items())

    def close(self) -> None:
        """Log every host out of this portal, delete what this rig made on the group,
        and undo the guest's node setup, so the guest tier's other tests find the
        guest and the group as they left them."""
        gw = self.hosts.gateway if self.hosts.subnet else None
        if gw is not None:
            self.vm.ssh(["sh", "-c",
                         f"iscsiadm -m node -p {gw}:3260 --logout; "
                         f"iscsiadm -m node -p {gw}:3260 -o delete; "
                         f"ip addr del {gw}/32 dev lo; rm -f /etc/sudoers.d/eqliscsi; "
                         "udevadm settle -t 10"],
                        check=False, timeout=HOST_COMMAND_TIMEOUT_S)  # fmt: skip
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            subprocess.run(
                ["ssh", "-F", str(self.fe / "ssh_config"), "-O", "exit", "h1"],
                capture_output=True, timeout=10, check=False,
            )  # fmt: skip
        if self._tunnel is not None:
            self._tunnel.terminate()
            try:
                self._tunnel.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._tunnel.kill()
                self._tunnel.wait(timeout=10)
            self._tunnel = None
        self.hosts.down()  # logs the stand-in out too (its sessions die with it)
        leftovers = sorted(set(self.volumes()) - self._before)
        if leftovers:
            # Every host is logged out by now, so nothing holds a connection.
            async def remove(runner: CliRunner) -> None:
                ops = SanOps(runner, 100)
                for name in leftovers:
                    await ops.delete_volume(name)

            asyncio.run(run_action(self.group.endpoint, remove))

    # ------------------------------------------------------------------ LifecycleRig
    def simulator(
        self, profile: str, *, name: str | None = None, as_oneadmin: bool = True
    ) -> Frontend:
        # The hosts admit oneadmin only (as an OpenNebula node): as_oneadmin is what
        # this rig always does, whatever is asked.
        key = name or profile
        if key in self._sims:
            return self._sims[key]
        sim = OnedSimulator.create(
            profile,
            self.fe / "sim" / key,
            conf=self.conf_text(),
            extra_env={
                "EQLISCSI_SSH_CONFIG": str(self.fe / "ssh_config"),
                "EQLISCSI_LOCK_DIR": str(self.fe / "locks"),
            },
        )
        # Logins on the emulated guest take seconds each; a step may do several.
        sim.timeout = 300.0
        sim.register_datastore(IMAGE_DS)
        sim.register_datastore(SYSTEM_DS)
        self._sims[key] = sim
        return sim

    def put_vm(self, sim: Frontend, vm: VmSpec) -> None:
        sim.register_vm(vm)

    def run(self, host: str, command: str) -> HostResult:
        if host not in HOSTS:
            raise ValueError(f"no host {host!r} in this rig")
        if host == "h1":
            # udev names and removes /dev/iscsi links after the kernel's events; the
            # judge looks at the host once udev has handled what happened so far, as
            # the driver's own steps wait for the link (EQL_WAIT_TIME).
            argv = self.vm.ssh_argv(["sh", "-c", f"udevadm settle -t 10; {command}"])
        else:
            argv = self.hosts.ssh_argv(STANDIN, command)
        r = subprocess.run(argv, capture_output=True, timeout=HOST_COMMAND_TIMEOUT_S, check=False)
        return HostResult(r.returncode, r.stdout, r.stderr)

    def volumes(self) -> dict[str, dict[str, Any]]:
        r = self.vm.ssh(["cat", f"{RUN}/state/san.json"], check=False)
        if r.returncode != 0:
            raise GuestLifecycleError(
                f"Could not read the in-guest group's model ({r.stderr.strip()[-200:]}); "
                f"read {RUN}/log in the guest."
            )
        data = json.loads(r.stdout)
        return {v["name"]: v for v in data["volumes"]}

    def chap_secret(self) -> Secret:
        return Secret.from_file(self.chap_file)


def _secret_file(path: Path, value: str) -> None:
    path.touch(mode=0o600)
    path.chmod(0o600)
    path.write_text(value + "\n")


def _wait_listening(address: str, port: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + TUNNEL_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            err = proc.stderr.read() if proc.stderr else b""
            raise GuestLifecycleError(
                f"The ssh forward to the guest's portal exited "
                f"({err.decode(errors='replace').strip()[-200:]}); check the guest's sshd."
            )
        try:
            with socket.create_connection((address, port), timeout=2):
                return
        except OSError:
            time.sleep(0.3)
    raise GuestLifecycleError(
        f"The ssh forward did not listen on {address}:{port} within {TUNNEL_TIMEOUT_S:.0f} s; "
        "check the guest's sshd."
    )
