"""Embedded-rig hypervisor hosts: separate network and mount namespaces with sshd.

Each host is

* a network namespace ``eqh<rig>-h<N>`` whose ``eth0`` is a veth into a bridge the
  rig creates in the root namespace; the bridge holds ``10.254.<S>.1`` (where the
  rig binds its iSCSI target) and host N is ``10.254.<S>.<10+N>``.  The subnet is
  chosen free on this machine; no traffic leaves these addresses;
* a mount namespace held by one long-lived process (``holder``), with its own
  ``/etc`` and ``/var/lib`` (overlays: private ``/etc/iscsi`` node database, sshd
  keys, ``/var/lib/one/datastores``), a private ``/run`` (sessions, locks),
  ``/var/tmp`` (where ``onehost sync`` would put the TM remotes),
  ``/usr/local/sbin`` (the ``iscsiadm`` stand-in) and a tmpfs on ``/dev/iscsi``, so
  one host never sees another host's links;
* a user ``oneadmin`` (uid 9869, owner of ``/var/lib/one``) who may run exactly the
  driver's iscsiadm forms and the CHAP helper as root, through the shipped
  ``remotes/tm/eqliscsi/eqliscsi.sudoers`` (iscsiadm's path set to the stand-in's);
* an OpenSSH ``sshd`` on ``<address>:22``, login by the rig's key only, as root
  (:attr:`HostRig.ssh_config`) or as oneadmin (:attr:`HostRig.ssh_config_oneadmin`).

``down`` kills every process living in a host's namespaces (sshd, its sessions,
``qemu-storage-daemon``), detaches loop devices backed by the rig's files, deletes
the namespaces and the bridge (it leaves the empty ``/dev/iscsi`` mount point: see ``down``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import ipaddress
import json
import os
import secrets
import shlex
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from eqliscsi.errors import RigError

__all__ = ["Host", "HostRig", "HostRigError"]

REPO = Path(__file__).resolve().parents[2]
REMOTES_TM = REPO / "remotes" / "tm" / "eqliscsi"
SSHD = "/usr/sbin/sshd"
READY_TIMEOUT_S = 15.0
SUBNET_LOCK = "/run/lock/eqliscsi-hostrig.lock"
# The driver's user on a real host: OpenNebula's oneadmin (the packages' fixed uid).
DRIVER_USER = "oneadmin"
DRIVER_UID = 9869
# Where the host keeps the root-owned CHAP helper that sudoers names (see
# remotes/tm/eqliscsi/eqliscsi.sudoers): the host's private /usr/local/sbin.
NODE_AUTH_HELPER = "/usr/local/sbin/eqliscsi-node-auth"


class HostRigError(RigError):
    reference = "rig-hosts-failed"


def _run(argv: list[str], *, check: bool = True, timeout: float = 30) -> str:
    r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    if check and r.returncode != 0:
        raise HostRigError(
            f"Rig command {shlex.join(argv)} failed ({r.returncode}: "
            f"{r.stderr.strip()[:300]}); check the machine has iproute2, util-linux and "
            "overlayfs, and that you are root."
        )
    return r.stdout


def _free_subnet() -> int:
    used = _run(["ip", "-4", "-o", "addr", "show"]) + _run(["ip", "-4", "route", "show"])
    for third in range(130, 250):
        net = ipaddress.ip_network(f"10.254.{third}.0/24")
        if str(net.network_address)[:-1] not in used:
            return third
    raise HostRigError("No free 10.254.x.0/24 subnet for the rig's hosts; run `down` on old rigs.")


@dataclass(frozen=True, slots=True)
class Host:
    name: str  # h1, h2, ...
    index: int
    address: str
    netns: str
    state: Path  # everything of this host the rig keeps on disk
    holder_pid: int
    sshd_pid: int

    @property
    def etc_upper(self) -> Path:
        return self.state / "etc-upper"

    @property
    def datastores(self) -> Path:
        """The host's /var/lib/one/datastores as seen from the root namespace."""
        return self.state / "varlib-upper" / "one" / "datastores"

    def nsenter(self, *argv: str) -> list[str]:
        """argv running ``argv`` inside this host's network, mount and UTS namespaces."""
        return ["nsenter", "-t", str(self.holder_pid), "-m", "-n", "-u", "--", *argv]


@dataclass
class HostRig:
    """A set of hosts under ``workdir``; use as a context manager or call up/down."""

    workdir: Path
    count: int = 2
    rig_id: str = field(default_factory=lambda: secrets.token_hex(2))
    hosts: list[Host] = field(default_factory=list)
    subnet: int = 0
    made_dev_iscsi: bool = False
    data_lun: int = 0  # 1 behind tgt, which keeps LUN 0 for its controller

    @property
    def bridge(self) -> str:
        return f"eqh{self.rig_id}br"

    @property
    def gateway(self) -> str:
        """The root-namespace address on the hosts' bridge: bind rig services here."""
        return f"10.254.{self.subnet}.1"

    @property
    def ssh_config(self) -> Path:
        return self.workdir / "ssh_config"

    @property
    def ssh_config_oneadmin(self) -> Path:
        """The same hosts, reached as the non-root driver user (sudo path)."""
        return self.workdir / "ssh_config_oneadmin"

    @property
    def client_key(self) -> Path:
        return self.workdir / "id_ed25519"

    def ssh_argv(self, host: Host | str, *remote: str) -> list[str]:
        name = host.name if isinstance(host, Host) else host
        return ["ssh", "-F", str(self.ssh_config), name, *remote]

    # ------------------------------------------------------------------- up

    def __enter__(self) -> HostRig:
        self.up()
        return self

    def __exit__(self, *exc: object) -> None:
        self.down()

    def up(self) -> None:
        if os.geteuid() != 0:
            raise HostRigError("The host rig needs root (namespaces, mounts, loop devices).")
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.workdir.chmod(0o700)
        try:
            self._up()
        except BaseException:
            self.down()
            raise

    def _up(self) -> None:
        br = self.bridge
        # Rigs of parallel test runs must not pick the same subnet: choosing it and
        # claiming it with the bridge address is one step under a machine-wide lock.
        with open(SUBNET_LOCK, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            self.subnet = _free_subnet()
            self._save()
            _run(["ip", "link", "add", br, "type", "bridge"])
            _run(["ip", "addr", "add", f"{self.gateway}/24", "dev", br])
        _run(["ip", "link", "set", br, "up"])
        if not Path("/dev/iscsi").exists():
            Path("/dev/iscsi").mkdir()
            self.made_dev_iscsi = True
        self._save()
        _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(self.client_key)])
        known_hosts: list[str] = []
        ssh_config: list[str] = []
        for n in range(1, self.count + 1):
            host = self._make_host(n)
            self.hosts.append(host)
            self._save()
            pub = (host.state / "ssh_host_ed25519_key.pub").read_text().split()
            known_hosts.append(f"{host.address} {pub[0]} {pub[1]}")
            ssh_config.append(
                f"Host {host.name}\n  HostName {host.address}\n  User root\n"
                f"  IdentityFile {self.client_key}\n  IdentitiesOnly yes\n"
                f"  UserKnownHostsFile {self.workdir / 'known_hosts'}\n"
                "  StrictHostKeyChecking yes\n  BatchMode yes\n  ConnectTimeout 5\n"
                "  LogLevel ERROR\n"
            )
        (self.workdir / "known_hosts").write_text("\n".join(known_hosts) + "\n")
        self.ssh_config.write_text("".join(ssh_config))
        self.ssh_config_oneadmin.write_text(
            "".join(ssh_config).replace("  User root\n", f"  User {DRIVER_USER}\n")
        )
        for host in self.hosts:
            self._wait_ssh(host)

    def _make_host(self, n: int) -> Host:
        name = f"h{n}"
        netns = f"eqh{self.rig_id}-{name}"
        address = f"10.254.{self.subnet}.{10 + n}"
        state = self.workdir / name
        for sub in (
            "etc-upper/iscsi/ifaces",
            "etc-work",
            "varlib-upper/one/datastores",
            "varlib-work",
            "vartmp/one/tm/eqliscsi",
            "sbin",
            "log",
        ):
            (state / sub).mkdir(parents=True, exist_ok=True)
        etc = state / "etc-upper"
        (etc / "iscsi" / "initiatorname.iscsi").write_text(
            f"InitiatorName=iqn.2026-11.org.eqliscsi.rig:{self.rig_id}-{name}\n"
        )
        (state / "standin").mkdir(exist_ok=True)
        (etc / "iscsi" / "eqliscsi-standin.conf").write_text(
            f"data_lun = {self.data_lun}\nstate_dir = {state / 'standin'}\n"
        )
        (etc / "hostname").write_text(name + "\n")
        self._add_driver_user(state, name)
        # What `onehost sync` does: the driver's remotes on the host.
        for f in REMOTES_TM.iterdir():
            if f.is_file():
                shutil.copy2(f, state / "vartmp" / "one" / "tm" / "eqliscsi" / f.name)
        wrapper = state / "sbin" / "iscsiadm"
        wrapper.write_text(
            "#!/bin/sh\n# eqliscsi rig: iscsiadm stand-in (rig/hosts/iscsiadm_standin.py)\n"
            f"PYTHONPATH={shlex.quote(str(REPO))} exec {shlex.quote(sys.executable)} "
            '-m rig.hosts.iscsiadm_standin "$@"\n'
        )
        wrapper.chmod(0o755)
        _run(
            [
                "ssh-keygen",
                "-q",
                "-t",
                "ed25519",
                "-N",
                "",
                "-f",
                str(state / "ssh_host_ed25519_key"),
            ]
        )
        (state / "authorized_keys").write_text(Path(str(self.client_key) + ".pub").read_text())
        # sshd reads a user's keys as that user, who cannot reach into the rig's 0700
        # directory: oneadmin's copy lives in its home, /var/lib/one/.ssh.
        dot_ssh = state / "varlib-upper" / "one" / ".ssh"
        dot_ssh.mkdir(mode=0o700, exist_ok=True)
        shutil.copy2(state / "authorized_keys", dot_ssh / "authorized_keys")
        for p in (dot_ssh, dot_ssh / "authorized_keys"):
            os.chown(p, DRIVER_UID, DRIVER_UID)
        (state / "sshd_config").write_text(
            f"ListenAddress {address}:22\n"
            f"HostKey {state / 'ssh_host_ed25519_key'}\n"
            f"AuthorizedKeysFile {state / 'authorized_keys'} .ssh/authorized_keys\n"
            "PermitRootLogin prohibit-password\nPasswordAuthentication no\n"
            "KbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n"
            f"PidFile {state / 'sshd.pid'}\nPrintMotd no\nAcceptEnv none\n"
        )
        # Network: veth into the bridge, peer renamed eth0 inside the namespace.
        veth = f"eqh{self.rig_id}{name}"
        _run(["ip", "netns", "add", netns])
        _run(["ip", "link", "add", veth, "type", "veth", "peer", "name", veth + "p"])
        _run(["ip", "link", "set", veth, "master", self.bridge, "up"])
        _run(["ip", "link", "set", veth + "p", "netns", netns])
        ns = ["ip", "-n", netns]
        _run([*ns, "link", "set", veth + "p", "name", "eth0"])
        _run([*ns, "addr", "add", f"{address}/24", "dev", "eth0"])
        _run([*ns, "link", "set", "eth0", "up"])
        _run([*ns, "link", "set", "lo", "up"])
        holder_pid = self._start_holder(netns, state)
        host = Host(name, n, address, netns, state, holder_pid, 0)
        log = open(state / "log" / "sshd.log", "ab")  # noqa: SIM115 - handed to sshd
        with log:
            sshd = subprocess.Popen(
                host.nsenter(SSHD, "-D", "-e", "-f", str(state / "sshd_config")),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
        return Host(name, n, address, netns, state, holder_pid, sshd.pid)

    @staticmethod
    def _add_driver_user(state: Path, name: str) -> None:
        """oneadmin with the shipped sudoers rule, as on an OpenNebula KVM host."""
        etc = state / "etc-upper"

        def extend(fname: str, line: str, *, member_of: str | None = None) -> None:
            src = Path("/etc") / fname
            text = src.read_text() if src.exists() else ""
            if member_of is not None:
                # Also a member of an existing group (group:x:gid:a,b).
                rows = text.splitlines()
                for i, row in enumerate(rows):
                    if row.startswith(member_of + ":"):
                        members = [m for m in row.split(":")[3].split(",") if m]
                        rows[i] = ":".join([*row.split(":")[:3], ",".join([*members, DRIVER_USER])])
                text = "\n".join(rows) + "\n" if rows else ""
            if text and not text.endswith("\n"):
                text += "\n"
            dst = etc / fname
            dst.write_text(text + line + "\n")
            if src.exists():
                st = src.stat()
                os.chown(dst, st.st_uid, st.st_gid)
                dst.chmod(st.st_mode & 0o7777)

        uid = DRIVER_UID
        extend("passwd", f"{DRIVER_USER}:x:{uid}:{uid}:OpenNebula:/var/lib/one:/bin/sh")
        # Group disk, as OpenNebula's KVM nodes set oneadmin up (QEMU opens the LUNs).
        extend("group", f"{DRIVER_USER}:x:{uid}:", member_of="disk")
        extend("gshadow", f"{DRIVER_USER}:!::", member_of="disk")
        extend("shadow", f"{DRIVER_USER}:*:19000:0:99999:7:::")
        # sudo names the host in its checks; an unresolvable one costs a stderr line.
        extend("hosts", f"127.0.1.1 {name}")
        rule = (REMOTES_TM / "eqliscsi.sudoers").read_text()
        rule = rule.replace("/usr/sbin/iscsiadm ", "/usr/local/sbin/iscsiadm ")
        (etc / "sudoers.d").mkdir(exist_ok=True)
        sudoers = etc / "sudoers.d" / "eqliscsi"
        sudoers.write_text(rule)
        sudoers.chmod(0o440)
        helper = state / "sbin" / Path(NODE_AUTH_HELPER).name
        shutil.copy2(REMOTES_TM / "eqliscsi-node-auth", helper)
        helper.chmod(0o755)
        one = state / "varlib-upper" / "one"
        (one / "datastores" / "0").mkdir(parents=True, exist_ok=True)
        for d in (one, one / "datastores", one / "datastores" / "0"):
            os.chown(d, uid, uid)

    def _start_holder(self, netns: str, state: Path) -> int:
        """One process that owns the host's mount namespace (and sits in its netns)."""
        q = shlex.quote
        ready = state / "holder.ready"
        setup = "\n".join(
            [
                "set -e",
                f"hostname {q(state.name)}",
                f"mount -t overlay eqh-etc -o lowerdir=/etc,upperdir={q(str(state / 'etc-upper'))},"
                f"workdir={q(str(state / 'etc-work'))} /etc",
                f"mount -t overlay eqh-varlib -o lowerdir=/var/lib,"
                f"upperdir={q(str(state / 'varlib-upper'))},"
                f"workdir={q(str(state / 'varlib-work'))} /var/lib",
                "mount -t tmpfs -o mode=0755 eqh-run /run",
                # /run/lock is 1777 on Debian: oneadmin's scripts take their flock there.
                "mkdir -p /run/sshd /run/lock && chmod 1777 /run/lock",
                f"mount --bind {q(str(state / 'vartmp'))} /var/tmp",
                f"mount --bind {q(str(state / 'sbin'))} /usr/local/sbin",
                "mount -t tmpfs -o mode=0755 eqh-dev-iscsi /dev/iscsi",
                f": > {q(str(ready))}",
                # exec: the holder *is* the namespace's anchor; SIGTERM ends it.
                "exec sleep infinity",
            ]
        )
        log = open(state / "log" / "holder.log", "ab")  # noqa: SIM115 - handed to holder
        with log:
            proc = subprocess.Popen(
                [
                    "ip",
                    "netns",
                    "exec",
                    netns,
                    "unshare",
                    "--mount",
                    "--uts",
                    "--propagation",
                    "private",
                    "--",
                    "sh",
                    "-c",
                    setup,
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not ready.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise HostRigError(
                    f"The namespace holder of {netns} did not come up; see "
                    f"{state / 'log' / 'holder.log'}."
                )
            time.sleep(0.05)
        # ip netns exec execs unshare, which execs sh, which execs sleep: same pid.
        return proc.pid

    def _wait_ssh(self, host: Host) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            r = subprocess.run(
                self.ssh_argv(host, "true"), capture_output=True, timeout=20, check=False
            )
            if r.returncode == 0:
                return
            if time.monotonic() > deadline:
                raise HostRigError(
                    f"sshd of rig host {host.name} ({host.address}) does not answer: "
                    f"{r.stderr.decode(errors='replace').strip()[:200]}; see "
                    f"{host.state / 'log' / 'sshd.log'}."
                )
            time.sleep(0.1)

    def _save(self) -> None:
        data = {
            "rig_id": self.rig_id,
            "subnet": self.subnet,
            "made_dev_iscsi": self.made_dev_iscsi,
            "hosts": [{**dataclasses.asdict(h), "state": str(h.state)} for h in self.hosts],
        }
        (self.workdir / "rig.json").write_text(json.dumps(data, indent=1))

    @classmethod
    def load(cls, workdir: Path) -> HostRig:
        data = json.loads((workdir / "rig.json").read_text())
        rig = cls(workdir, count=len(data["hosts"]), rig_id=data["rig_id"])
        rig.subnet = data["subnet"]
        rig.made_dev_iscsi = data["made_dev_iscsi"]
        rig.hosts = [Host(**{**h, "state": Path(h["state"])}) for h in data["hosts"]]
        return rig

    # ------------------------------------------------------------------- down

    def netns_names(self) -> list[str]:
        return [f"eqh{self.rig_id}-h{n}" for n in range(1, self.count + 1)]

    def processes(self) -> list[int]:
        """PIDs living in any of this rig's network namespaces."""
        inodes = set()
        for name in self.netns_names():
            with contextlib.suppress(OSError):
                inodes.add(os.stat(f"/run/netns/{name}").st_ino)
        pids = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                if os.stat(f"/proc/{entry}/ns/net").st_ino in inodes:
                    pids.append(int(entry))
            except OSError:
                continue
        return pids

    def loop_devices(self) -> list[str]:
        """Loop devices whose backing file is one of this rig's files."""
        out = _run(["losetup", "--list", "--noheadings", "--output", "NAME,BACK-FILE"], check=False)
        prefix = str(self.workdir)
        devs = []
        for line in out.splitlines():
            parts = line.split(None, 1)
            if len(parts) == 2 and parts[1].startswith(prefix):
                devs.append(parts[0])
        return devs

    def down(self) -> None:
        """Tear everything down; safe to call twice and after a failed ``up``."""
        # 1. Loop devices first: they hold the FUSE files of qemu-storage-daemon open.
        for dev in self.loop_devices():
            _run(["losetup", "--detach", dev], check=False)
        # 2. Every process in the namespaces: sshd, sessions, qemu-storage-daemon, holder.
        for sig in (signal.SIGTERM, signal.SIGKILL):
            pids = self.processes()
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)
            deadline = time.monotonic() + 5
            while self.processes() and time.monotonic() < deadline:
                time.sleep(0.05)
        for host in self.hosts:
            for pid in (host.sshd_pid, host.holder_pid):
                with contextlib.suppress(ChildProcessError, OSError):
                    os.waitpid(pid, os.WNOHANG)
        # A loop device that someone still has open (udev or blkid probing it, say)
        # is only marked for autoclear by --detach; wait, bounded, until it is gone.
        deadline = time.monotonic() + 10
        while (loops := self.loop_devices()) and time.monotonic() < deadline:
            for dev in loops:
                _run(["losetup", "--detach", dev], check=False)
            time.sleep(0.1)
        for name in self.netns_names():
            if Path(f"/run/netns/{name}").exists():
                _run(["ip", "netns", "delete", name], check=False)
        if self.bridge in _run(["ip", "-o", "link", "show"], check=False):
            _run(["ip", "link", "delete", self.bridge], check=False)
        # /dev/iscsi stays even when this rig made it: the hosts of a concurrent rig
        # mount their private tmpfs on it, and since Linux 3.18 removing a directory
        # that is a mount point in another mount namespace silently detaches that
        # mount there, so an rmdir here would pull the links out from under them.
        if (self.workdir / "rig.json").exists():
            self._save()
