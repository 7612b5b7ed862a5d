"""The TM driver's actions with the kernel guest as a real hypervisor host.

The remotes run on this machine as oned runs them (``rig.oned.OnedSimulator``,
OpenNebula 7.0 conventions); their host steps reach the guest as **oneadmin** over
OpenSSH through QEMU's 127.0.0.1 forward, where they meet open-iscsi's real
iscsiadm and iscsid (through ``sudo -n``, as OpenNebula's sudoers allows), the
kernel's iscsi_tcp and sd, and udev with the shipped rule and helper.  The group is
the fake EqualLogic group running in the same guest with LIO (``guest_eql``).

Migrations need a second host: the embedded rig's stand-in host ``h1``
(rig/hosts: its own network namespace, sshd, the iscsiadm stand-in whose data path
is qemu-storage-daemon + a loop device).  A second guest would cost another boot,
and a second initiator inside the guest would share its iscsid and /dev, so it
would not be a second host.  Bytes written through ``/dev/iscsi/<volume>`` on one
host are read back through the other host's initiator.

One portal for everyone.  The driver gives hosts ``EQL_PORTAL`` and the front-end
checks the same portal with the native client; open-iscsi keys its node records by
the address SendTargets advertises, and LIO's wildcard portal advertises the address
the connection arrived on.  So the portal is the stand-in hosts' bridge address
``10.254.S.1:3260``: inside the guest it is an address on ``lo`` (LIO answers there
natively), and on this machine an OpenSSH local forward bound to the bridge address
carries connections into the guest, where sshd connects to the same address.  Every
initiator therefore reaches LIO at, and is told, ``10.254.S.1:3260``.  No traffic
leaves 127.0.0.1, the rig's bridge and the guest.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shlex
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest

from eqliscsi.opennebula import iscsiadm as ia
from eqliscsi.opennebula.devname import volume_from_iqn
from eqliscsi.san.broker_client import run_action
from eqliscsi.san.ops import CliRunner, SanOps
from eqliscsi.secret import Secret
from rig.embedded import IMAGE_DS, SYSTEM_DS
from rig.guest.fake_group import InGuestGroup
from rig.guest.vm import GuestVM
from rig.hosts import HostRig
from rig.need import need, need_executable
from rig.oned import DiskSpec, ImageSpec, OnedSimulator, TmOutcome, VmSpec
from tests.integration.guest.test_driver_iscsiadm import install_remotes

pytestmark = [pytest.mark.guest, pytest.mark.lio, pytest.mark.judge, pytest.mark.timeout(900)]

SYS = "/var/lib/one//datastores/0"  # oned's default DATASTORE_LOCATION, double slash included
PROFILE = "7.0"
TUNNEL_TIMEOUT_S = 30.0
# OpenNebula's node packages give oneadmin sudo for iscsiadm; docs/host-iscsi.md adds
# the CHAP helper next to it.
SUDOERS = (
    "oneadmin ALL=(ALL) NOPASSWD: /usr/bin/iscsiadm, /usr/sbin/iscsiadm, "
    f"{ia.DEFAULT_AUTH_HELPER}\n"
)


def _volumes(stdout: str, status: int) -> list[str]:
    """Volume names of the EqualLogic sessions in ``iscsiadm -m session`` output."""
    return sorted(str(volume_from_iqn(s.iqn)) for s in ia.parse_sessions(stdout, status=status))


@dataclass
class TmEnv:
    vm: GuestVM
    group: InGuestGroup
    hosts: HostRig
    sim: OnedSimulator
    portal: str
    chap_user: str
    # Volumes this module made on the in-guest group.  The group and its LIO live for
    # the whole session, and the LIO half of the client suite expects discovery to list
    # only its own targets, so teardown deletes whatever is left here.
    created: list[str] = field(default_factory=list)

    # -- the real host (g1), judged as root over the test's own SSH connection ----
    def g1(self, script: str, *, stdin: str | None = None) -> str:
        return self.vm.ssh(["sh", "-euc", script], input=stdin, timeout=120).stdout

    def g1_volumes(self) -> list[str]:
        r = self.vm.ssh(list(ia.session_argv()), check=False)
        return _volumes(r.stdout, r.returncode)

    # -- the stand-in host (h1) ---------------------------------------------------
    def h1(self, script: str, *, stdin: bytes = b"") -> bytes:
        r = subprocess.run(
            self.hosts.ssh_argv("h1", script), input=stdin, capture_output=True, timeout=120,
            check=False,
        )  # fmt: skip
        assert r.returncode == 0, r.stderr
        return r.stdout

    def h1_volumes(self) -> list[str]:
        r = subprocess.run(
            self.hosts.ssh_argv("h1", "iscsiadm -m session"), capture_output=True, text=True,
            timeout=60, check=False,
        )  # fmt: skip
        return _volumes(r.stdout, r.returncode)

    # -- the group ------------------------------------------------------------------
    async def volume_size(self, name: str) -> int | None:
        async def body(runner: CliRunner) -> int | None:
            info = await SanOps(runner, 100).volume_info(name)
            return None if info is None else info.size_mb

        return await run_action(self.group.endpoint, body)


def _wait_listening(address: str, port: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + TUNNEL_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            err = proc.stderr.read() if proc.stderr else b""
            pytest.fail(f"the ssh forward exited: {err.decode(errors='replace')}")
        try:
            with socket.create_connection((address, port), timeout=2):
                return
        except OSError:
            time.sleep(0.3)
    pytest.fail(f"the ssh forward did not listen on {address}:{port} in {TUNNEL_TIMEOUT_S:.0f} s")


@pytest.fixture(scope="module")
def tm(
    guest_vm: GuestVM, guest_eql: InGuestGroup, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TmEnv]:
    need(os.geteuid() == 0, "the stand-in host needs root (namespaces, loop devices)")
    for exe, pkg in (
        ("ip", "iproute2"), ("unshare", "util-linux"), ("nsenter", "util-linux"),
        ("losetup", "util-linux"), ("sshd", "openssh-server"), ("ssh", "openssh-client"),
        ("qemu-storage-daemon", "qemu-system-common"), ("iscsi-ls", "libiscsi-bin"),
    ):  # fmt: skip
        need_executable(exe, pkg)
    need(Path("/dev/fuse").exists(), "/dev/fuse is missing (FUSE)")
    need(Path("/dev/loop-control").exists(), "/dev/loop-control is missing (loop)")
    vm = guest_vm
    root = tmp_path_factory.mktemp("tm-guest")
    fe = root / "fe"
    fe.mkdir()
    hosts = HostRig(root / "hosts", count=1, data_lun=0)  # LIO serves LUN 0
    hosts.up()
    gw = hosts.gateway
    tunnel: subprocess.Popen[bytes] | None = None
    env: TmEnv | None = None
    try:
        install_remotes(vm)
        # The guest as OpenNebula's node packages leave a host: oneadmin with its home
        # in /var/lib/one, the front-end's key, and sudo for iscsiadm.
        vm.ssh(["sh", "-euc",
                "id oneadmin >/dev/null 2>&1 || useradd -m -d /var/lib/one -s /bin/sh oneadmin; "
                # Earlier tests ran as root and may have made /var/lib/one/datastores;
                # on a node it is oneadmin's, all of it.
                "mkdir -p /var/lib/one/datastores; chown -R oneadmin:oneadmin /var/lib/one; "
                "install -d -o oneadmin -g oneadmin -m 700 /var/lib/one/.ssh; "
                "install -o oneadmin -g oneadmin -m 600 /root/.ssh/authorized_keys "
                "/var/lib/one/.ssh/authorized_keys; "
                # a lock left by root-run scripts of other tests would lock oneadmin out
                "rm -f /run/lock/eqliscsi-iscsi.lock; "
                f"ip addr replace {gw}/32 dev lo"])  # fmt: skip
        vm.install_file("/etc/sudoers.d/eqliscsi", SUDOERS, mode=0o440)
        # The portal: an OpenSSH local forward on the bridge address into the guest.
        # Its own connection (not the multiplexed one, whose first options would win).
        tunnel = subprocess.Popen(
            ["ssh", "-F", "/dev/null", "-i", str(vm.image.ssh_key), "-p", str(vm.ports.ssh),
             "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes",
             "-o", "StrictHostKeyChecking=yes",
             "-o", f"UserKnownHostsFile={vm.workdir / 'known_hosts'}",
             "-o", "ExitOnForwardFailure=yes", "-o", "ServerAliveInterval=15",
             "-N", "-L", f"{gw}:3260:{gw}:3260", "root@127.0.0.1"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip
        _wait_listening(gw, 3260, tunnel)

        # The front-end: eqliscsi.conf, secrets (0600), an ssh config naming the hosts.
        chap_user = f"tmg-{secrets.token_hex(3)}"
        chap_secret = secrets.token_hex(8)
        for name, value in (
            ("eql_password", guest_eql.endpoint.password.reveal_str()),
            ("chap_secret", chap_secret),
        ):
            fd = os.open(fe / name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(value + "\n")
        conf = {
            "EQL_HOST": "127.0.0.1",
            "EQL_SSH_PORT": str(vm.ports.eql),
            "EQL_USER": guest_eql.endpoint.username,
            "EQL_PASS_FILE": str(fe / "eql_password"),
            "EQL_KNOWN_HOSTS": str(guest_eql.endpoint.known_hosts),
            "EQL_PORTAL": f"{gw}:3260",
            "EQL_POOL": "default",
            "EQL_SECURITY_ACCESS": f"'username {chap_user} authmethod chap'",
            "EQL_CHAP_USER": chap_user,
            "EQL_CHAP_SECRET_FILE": str(fe / "chap_secret"),
            # udev under TCG: a login's link appears within seconds, rarely ten.
            "EQL_WAIT_TIME": "60",
            "EQL_MAX_SESSIONS": "2",
            "NO_ISCSI": "fe",
        }
        ssh_config = fe / "ssh_config"
        ssh_config.write_text(
            "Host g1\n  HostName 127.0.0.1\n"
            f"  Port {vm.ports.ssh}\n  User oneadmin\n"
            f"  IdentityFile {vm.image.ssh_key}\n  IdentitiesOnly yes\n"
            f"  UserKnownHostsFile {vm.workdir / 'known_hosts'}\n"
            "  StrictHostKeyChecking yes\n  BatchMode yes\n  LogLevel ERROR\n"
            # As a front-end's ~/.ssh/config often does: under TCG each key exchange
            # costs the guest a second or more.
            f"  ControlMaster auto\n  ControlPath {fe}/cm-%r@%h:%p\n  ControlPersist 120\n"
            + hosts.ssh_config.read_text()
        )
        sim = OnedSimulator.create(
            PROFILE,
            fe / "sim",
            conf="".join(f"{k}={v}\n" for k, v in conf.items()),
            extra_env={"EQLISCSI_SSH_CONFIG": str(ssh_config),
                       "EQLISCSI_LOCK_DIR": str(fe / "locks")},
        )  # fmt: skip
        sim.timeout = 300.0
        sim.register_datastore(IMAGE_DS)
        sim.register_datastore(SYSTEM_DS)

        async def make_chap_user(runner: CliRunner) -> None:
            await SanOps(runner, 0).ensure_chap_user(
                chap_user, Secret(chap_secret.encode(), origin="test CHAP secret")
            )

        asyncio.run(run_action(guest_eql.endpoint, make_chap_user))
        env = TmEnv(vm, guest_eql, hosts, sim, f"{gw}:3260", chap_user)
        yield env
    finally:
        leftovers = list(reversed(env.created)) if env is not None else []
        # Whatever a failed test left: the guest's sessions to this portal.
        vm.ssh(["sh", "-c",
                f"iscsiadm -m node -p {gw}:3260 --logout; iscsiadm -m node -p {gw}:3260 -o delete; "
                f"ip addr del {gw}/32 dev lo; rm -f /etc/sudoers.d/eqliscsi"],
               check=False)  # fmt: skip
        subprocess.run(
            ["ssh", "-F", str(fe / "ssh_config"), "-O", "exit", "g1"],
            capture_output=True, timeout=10, check=False,
        )  # fmt: skip
        if tunnel is not None:
            tunnel.terminate()
            try:
                tunnel.wait(timeout=10)
            except subprocess.TimeoutExpired:
                tunnel.kill()
                tunnel.wait(timeout=10)
        hosts.down()
        if leftovers:
            # Every host is logged out by now, so nothing holds a connection.
            async def remove(runner: CliRunner) -> None:
                ops = SanOps(runner, 100)
                for name in leftovers:
                    await ops.delete_volume(name)

            asyncio.run(run_action(guest_eql.endpoint, remove))


def ok(out: TmOutcome) -> TmOutcome:
    assert out.ok, f"{out.argv[:1]} failed ({out.returncode}): {out.reason} {out.stderr[-1500:]}"
    return out


def link_of(env: TmEnv, path: str) -> tuple[str, str]:
    """(readlink, readlink -f) of ``path`` on the real host; "" when absent."""
    q = shlex.quote(path.replace("//", "/"))
    out = env.g1(f"udevadm settle -t 10; readlink {q} || true; readlink -e {q} || true")
    lines = [*out.splitlines(), "", ""]
    return lines[0].strip(), lines[1].strip()


def g1_write(env: TmEnv, path: str, block: int = 0) -> bytes:
    marker = f"eqliscsi-tm-{secrets.token_hex(8)}"
    env.g1(f"printf '%s' {marker} | dd of={shlex.quote(path)} bs=4096 seek={block} count=1 "
           "conv=sync,fsync,notrunc oflag=direct status=none")  # fmt: skip
    return marker.encode()


def g1_read(env: TmEnv, path: str, block: int = 0) -> bytes:
    r = env.vm.ssh(
        ["sh", "-euc", f"dd if={shlex.quote(path)} bs=4096 skip={block} count=1 iflag=direct "
         "status=none | head -c 64"],
    )  # fmt: skip
    return r.stdout.encode()


def h1_read(env: TmEnv, path: str, block: int = 0) -> bytes:
    return env.h1(
        f"dd if={shlex.quote(path)} bs=4096 skip={block} count=1 iflag=direct status=none"
    )[:64]


def h1_write(env: TmEnv, path: str, block: int = 0) -> bytes:
    marker = f"eqliscsi-tm-{secrets.token_hex(8)}".encode()
    env.h1(
        f"dd of={shlex.quote(path)} bs=4096 seek={block} count=1 conv=sync,fsync,notrunc "
        "oflag=direct status=none",
        stdin=marker,
    )
    return marker


async def test_tm_actions_on_a_real_host(tm: TmEnv) -> None:
    sim = tm.sim
    token = secrets.token_hex(2)
    image_id = 7700 + int(token, 16) % 200
    img = ImageSpec(id=image_id, name=f"tmg {token}", type=2, persistent=True, size_mb=32)
    out = ok(sim.run_ds("mkfs", sim.ds_document(img, IMAGE_DS), image_id))  # type: ignore[arg-type]
    source = out.info
    tm.created.append(source)
    assert await tm.volume_size(source) == 32

    # ---- persistent image: ln on the real host, a marker through /dev/iscsi ----------
    vm_p = image_id * 10
    disk_p = f"{SYS}/{vm_p}/disk.0"
    sim.register_vm(VmSpec(vm_p, disks=[DiskSpec(0, image_id, source, persistent=True,
                                                 size_mb=32)]))  # fmt: skip
    ok(sim.run_tm("ln", [f"fe:{source}", f"g1:{disk_p}", str(vm_p), "0"]))
    link, dev = link_of(tm, disk_p)
    assert link == f"/dev/iscsi/{source}"
    assert dev.startswith("/dev/sd"), dev  # udev's link to a real SCSI disk
    assert tm.g1_volumes() == [source]
    # The step ran as oneadmin through sudo: the link is oneadmin's.
    assert tm.g1(f"stat -c %U {shlex.quote(disk_p)}").strip() == "oneadmin"
    marker = g1_write(tm, disk_p)

    # Stop (g1 -> front-end, which is in NO_ISCSI): logout, link gone.
    ok(sim.run_tm("mv", [f"g1:{disk_p}", f"fe:{disk_p}", str(vm_p), "0"]))
    assert tm.g1_volumes() == []
    assert link_of(tm, disk_p) == ("", "")
    # Resume on the stand-in host: its own initiator reads what g1 wrote.
    ok(sim.run_tm("mv", [f"fe:{disk_p}", f"h1:{disk_p}", str(vm_p), "0"]))
    assert h1_read(tm, disk_p)[: len(marker)] == marker
    marker_h1 = h1_write(tm, disk_p, block=3)
    # And back onto the real host (h1 -> fe -> g1): g1 reads what h1 wrote.
    ok(sim.run_tm("mv", [f"h1:{disk_p}", f"fe:{disk_p}", str(vm_p), "0"]))
    assert tm.h1_volumes() == []
    ok(sim.run_tm("mv", [f"fe:{disk_p}", f"g1:{disk_p}", str(vm_p), "0"]))
    assert link_of(tm, disk_p)[1].startswith("/dev/sd")
    assert g1_read(tm, disk_p, block=3)[: len(marker_h1)] == marker_h1
    # Terminate a persistent disk: logout and link removal; the image's volume stays.
    ok(sim.run_tm("delete", [f"g1:{disk_p}", str(vm_p), "100"]))
    assert tm.g1_volumes() == []
    assert link_of(tm, disk_p) == ("", "")
    assert await tm.volume_size(source) == 32

    # ---- non-persistent: array-side clone grown to DISK/SIZE, on the real host -------
    vm_c = vm_p + 1
    disk_c = f"{SYS}/{vm_c}/disk.0"
    vm = VmSpec(vm_c, disks=[DiskSpec(0, image_id, source, size_mb=48)])
    sim.register_vm(vm)
    ok(sim.run_tm("clone", [f"fe:{source}", f"g1:{disk_c}", str(vm_c), "0"]))
    clone = f"{source}-{vm_c}-0"
    tm.created.append(clone)
    link, dev = link_of(tm, disk_c)
    assert (link, dev[:7]) == (f"/dev/iscsi/{clone}", "/dev/sd")
    clone_mb = await tm.volume_size(clone)
    assert clone_mb is not None and clone_mb >= 48
    # The kernel sees the grown LUN (15 MB units), and the clone carries the image's bytes.
    sectors = int(tm.g1(f"blockdev --getsz {dev}"))
    assert sectors * 512 == -(-clone_mb // 15) * 15 * 1024 * 1024
    assert g1_read(tm, disk_c)[: len(marker)] == marker
    marker2 = g1_write(tm, disk_c, block=1)

    # Live migration g1 -> h1: premigrate logs in on h1, postmigrate out on g1.
    vm_dir = f"{SYS}/{vm_c}"
    ok(sim.run_migrate("premigrate", src="g1", dst="h1", vm_dir=vm_dir, vm=vm, sys_tm="ssh"))
    assert tm.h1_volumes() == [clone]
    assert h1_read(tm, disk_c, block=1)[: len(marker2)] == marker2
    ok(sim.run_migrate("postmigrate", src="g1", dst="h1", vm_dir=vm_dir, vm=vm, sys_tm="ssh"))
    assert tm.g1_volumes() == []
    assert link_of(tm, f"/dev/iscsi/{clone}") == ("", "")
    assert tm.h1_volumes() == [clone]

    # A failed migration back to g1: premigrate's real login, failmigrate's real logout.
    ok(sim.run_migrate("premigrate", src="h1", dst="g1", vm_dir=vm_dir, vm=vm, sys_tm="ssh"))
    assert tm.g1_volumes() == [clone]
    assert link_of(tm, f"/dev/iscsi/{clone}")[1].startswith("/dev/sd")
    ok(sim.run_migrate("failmigrate", src="h1", dst="g1", vm_dir=vm_dir, vm=vm, sys_tm="ssh"))
    assert tm.g1_volumes() == []
    assert link_of(tm, f"/dev/iscsi/{clone}") == ("", "")
    assert tm.h1_volumes() == [clone]

    # The migration to g1 again, completed: the VM ends on the real host.
    marker3 = h1_write(tm, disk_c, block=2)
    ok(sim.run_migrate("premigrate", src="h1", dst="g1", vm_dir=vm_dir, vm=vm, sys_tm="ssh"))
    ok(sim.run_migrate("postmigrate", src="h1", dst="g1", vm_dir=vm_dir, vm=vm, sys_tm="ssh"))
    assert tm.h1_volumes() == []
    assert tm.g1_volumes() == [clone]
    assert g1_read(tm, disk_c, block=2)[: len(marker3)] == marker3

    # Terminate: logout on g1 and the clone deleted on the group; the image stays.
    ok(sim.run_tm("delete", [f"g1:{disk_c}", str(vm_c), "100"]))
    assert tm.g1_volumes() == []
    assert link_of(tm, disk_c) == ("", "")
    assert await tm.volume_size(clone) is None
    assert await tm.volume_size(source) == 32
    ok(sim.run_tm("delete", [f"g1:{disk_c}", str(vm_c), "100"]))  # oned retries: still fine
    # The image goes too (DS rm), leaving the session's group as this module found it.
    ok(sim.run_ds("rm", sim.ds_document(replace(img, source=source), IMAGE_DS), image_id))  # type: ignore[arg-type]
    assert await tm.volume_size(source) is None

    # The CHAP secret went to the hosts inside scripts on ssh's stdin, never into logs.
    chap_secret = (sim.root.parent / "chap_secret").read_text().strip()
    assert chap_secret not in sim.log_file.read_text()
    assert "***" in sim.log_file.read_text()
