"""The fake EqualLogic group in the san container, judged from outside it.

The SAN client (``eqliscsi.san.ops``) drives the Group Manager CLI over SSH through
the published port; the native iSCSI client and libiscsi's tools see the volume
through the host-side group portal (login redirected to the member portal, which is
published 1:1); OpenSSH and paramiko talk to the same shell; host1's iscsiadm
stand-in data path writes through the private network's group portal.  The san is
restarted mid-suite (state, volumes and bytes must survive) and the frontend is cut
off from it with ``docker network disconnect`` during an operation.

Test order matters inside this module (pytest keeps file order): the volume created
first is used by the later tests, and the restart comes after a marker is written.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import os
import shlex
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paramiko
import pytest

from eqliscsi.iscsi_discovery import (
    Auth,
    AuthenticationFailed,
    ChapCredentials,
    Portal,
    discover,
    probe,
)
from eqliscsi.opennebula import iscsiadm as ia
from eqliscsi.san import commands as c
from eqliscsi.san.ops import SanOps, VolumeSpec
from eqliscsi.san.session import SanEndpoint, open_session
from eqliscsi.secret import Secret
from rig.docker.topology import ONEADMIN_UID, DockerRig, Topology
from rig.hosts.rig import NODE_AUTH_HELPER
from rig.need import need_executable
from tests.e2e.conftest import TIMINGS

pytestmark = [pytest.mark.docker, pytest.mark.slow, pytest.mark.timeout(1200)]

DATASTORE = 100
VOLUME = "dock-vol-1"
SIZE_MB = 150  # a multiple of 15 MB, so the group does not round it up
CHAP_USER = "rig-docker"
CHAP_SECRET = b"docker-chap-secret-16"  # 12..16 bytes is what Windows wants; tgt takes any
MARKER = b"eqliscsi-docker-restart-marker"


def endpoint(rig: DockerRig, **over: Any) -> SanEndpoint:
    fields: dict[str, Any] = {
        "host": rig.san_ssh[0],
        "port": rig.san_ssh[1],
        "username": rig.account,
        "password": Secret.from_file(rig.password_file),
        "known_hosts": str(rig.known_hosts),
        "group": rig.group,
        "command_timeout": 30.0,
    }
    fields.update(over)
    return SanEndpoint(**fields)


def chap() -> Auth:
    return Auth(chap=ChapCredentials(CHAP_USER, Secret(CHAP_SECRET, origin="test")))


async def _create(rig: DockerRig) -> tuple[str, int]:
    async with open_session(endpoint(rig)) as s:
        ops = SanOps(s, DATASTORE)
        await ops.ensure_chap_user(CHAP_USER, Secret(CHAP_SECRET, origin="test"))
        ref = await ops.create_volume(
            VolumeSpec(VOLUME, SIZE_MB, access=(c.AccessRule(username=CHAP_USER),))
        )
        info = await ops.volume_info(VOLUME)
        assert info is not None
        return ref.iqn, info.size_mb


def san_model(topology: Topology, rig: DockerRig) -> dict[str, Any]:
    status, text = topology["san"].exec(["cat", f"{rig.state_dir}/san.json"])
    assert status == 0, text
    data: dict[str, Any] = json.loads(text)
    return data


def lun_file(topology: Topology, rig: DockerRig, name: str) -> str:
    uids = [v["uid"] for v in san_model(topology, rig)["volumes"] if v["name"] == name]
    assert len(uids) == 1, uids
    return rig.lun_path(uids[0])


@pytest.fixture(scope="module")
def volume(docker_rig: DockerRig) -> Iterator[str]:
    """A volume made through the SAN client over SSH, with CHAP access; its IQN."""
    iqn, size_mb = asyncio.run(_create(docker_rig))
    assert size_mb == SIZE_MB
    yield iqn


def test_san_ops_create_volume_over_ssh(volume: str, docker_rig: DockerRig) -> None:
    assert volume.startswith("iqn.2001-05.com.equallogic:0-8a0906-")
    assert volume.endswith(f"-{VOLUME}")

    async def check() -> tuple[str, list[str]]:
        async with open_session(endpoint(docker_rig)) as s:
            ops = SanOps(s, DATASTORE)
            records = await ops.access_records(VOLUME)
            return await ops.group_ip(), [r.username for r in records]

    group_ip, users = asyncio.run(check())
    assert users == [CHAP_USER]
    # The CLI shows the group address the hosts can reach: the san's private address.
    assert group_ip.count(".") == 3 and not group_ip.startswith(("0.", "127."))


def test_native_client_discovers_and_probes_through_redirect(
    volume: str, docker_rig: DockerRig
) -> None:
    host, port = docker_rig.portal
    portal = Portal(host, port)

    async def run() -> tuple[list[str], Any]:
        found = await discover(portal)
        result = await probe(portal, volume, auth=chap())
        return [t.name for t in found], result

    names, result = asyncio.run(run())
    assert volume in names
    # The host-side group portal redirected the login to the member, on the port
    # published 1:1 on loopback.
    assert result.redirected_to is not None
    assert (result.redirected_to.address, result.redirected_to.port) == (
        "127.0.0.1",
        docker_rig.member_port,
    )
    assert [(lun.lun, lun.size_bytes) for lun in result.luns] == [(1, SIZE_MB * 1024 * 1024)]


def test_native_client_wrong_chap_secret_is_refused(volume: str, docker_rig: DockerRig) -> None:
    host, port = docker_rig.portal
    wrong = Auth(chap=ChapCredentials(CHAP_USER, Secret(b"not-the-secret-1", origin="test")))
    with pytest.raises(AuthenticationFailed):
        asyncio.run(probe(Portal(host, port), volume, auth=wrong))


def test_libiscsi_reads_capacity_through_redirect(volume: str, docker_rig: DockerRig) -> None:
    readcap = need_executable("iscsi-readcapacity16", "libiscsi-bin")
    host, port = docker_rig.portal
    # libiscsi reads the CHAP secret from the environment, so it stays out of argv.
    env = {**os.environ, "LIBISCSI_CHAP_PASSWORD": CHAP_SECRET.decode()}
    out = subprocess.run(
        [readcap, f"iscsi://{CHAP_USER}@{host}:{port}/{volume}/1"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env=env,
    ).stdout
    blocks = SIZE_MB * 1024 * 1024 // 512
    assert f"RETURNED LOGICAL BLOCK ADDRESS:{blocks - 1}" in out
    assert f"Total size:{SIZE_MB * 1024 * 1024}" in out


def test_openssh_talks_to_the_san_shell(docker_rig: DockerRig, tmp_path: Path) -> None:
    ssh = need_executable("ssh", "openssh-client")
    host, port = docker_rig.san_ssh
    # OpenSSH reads passwords from a terminal or SSH_ASKPASS only: a tiny askpass
    # program prints the file, so the password is never in argv or the environment.
    askpass = tmp_path / "askpass"
    askpass.write_text(f"#!/bin/sh\nexec cat {shlex.quote(str(docker_rig.password_file))}\n")
    askpass.chmod(0o700)
    env = {**os.environ, "SSH_ASKPASS": str(askpass), "SSH_ASKPASS_REQUIRE": "force"}
    out = subprocess.run(
        [
            ssh, "-F", "/dev/null", "-p", str(port),
            "-o", f"UserKnownHostsFile={docker_rig.known_hosts}",
            "-o", "StrictHostKeyChecking=yes",
            "-o", "PreferredAuthentications=password,keyboard-interactive",
            "-o", "NumberOfPasswordPrompts=1",
            "-T", f"{docker_rig.account}@{host}",
        ],
        input="cli-settings paging off\nvolume show\nlogout\n",
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )  # fmt: skip
    assert "Welcome to Group Manager" in out.stdout, out.stderr
    assert VOLUME in out.stdout


def test_paramiko_talks_to_the_san_shell(docker_rig: DockerRig) -> None:
    host, port = docker_rig.san_ssh
    client = paramiko.SSHClient()
    client.load_host_keys(str(docker_rig.known_hosts))
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    try:
        client.connect(
            host,
            port=port,
            username=docker_rig.account,
            password=Secret.from_file(docker_rig.password_file).reveal().decode(),
            look_for_keys=False,
            allow_agent=False,
            timeout=20,
        )
        chan = client.invoke_shell(width=200, height=1000)
        chan.settimeout(20)
        buf = b""
        deadline = time.monotonic() + 20
        while not buf.rstrip().endswith(f"{docker_rig.group}>".encode()):
            assert time.monotonic() < deadline, buf
            buf += chan.recv(4096)
        assert b"Welcome to Group Manager" in buf
        chan.sendall(b"grpparams show\r")
        buf = b""
        while not buf.rstrip().endswith(f"{docker_rig.group}>".encode()):
            assert time.monotonic() < deadline, buf
            buf += chan.recv(4096)
        # The group's name and the private address the hosts use to reach it.
        text = buf.decode(errors="replace")
        assert "Group-Ipaddress" in text, text
        address = text.split("Group-Ipaddress:", 1)[1].split()[0]
        assert address.count(".") == 3 and not address.startswith(("0.", "127.")), text
    finally:
        client.close()


def _host1_script(rig: DockerRig, iqn: str, body: str) -> str:
    """A bash script for host1: the stand-in's data path (qemu-storage-daemon logs in to
    the group portal by name with CHAP, follows the redirect, exports over FUSE;
    losetup), then ``body`` with ``$dev`` set."""
    host, port = rig.private_portal
    blockdev = (
        f"driver=iscsi,node-name=lun,transport=tcp,portal={host}:{port},target={iqn},lun=1,"
        f"user={CHAP_USER},password-secret=sec0"
    )
    return f"""
set -eu
touch /tmp/lun
umask 077
printf '%s' {shlex.quote(CHAP_SECRET.decode())} > /tmp/chap
qemu-storage-daemon \\
  --object secret,id=sec0,file=/tmp/chap \\
  --blockdev {blockdev} \\
  --export type=fuse,id=e0,node-name=lun,mountpoint=/tmp/lun,writable=on \\
  --daemonize --pidfile /tmp/qsd.pid
rm -f /tmp/chap
dev=$(losetup -f --show /tmp/lun)
trap 'losetup -d "$dev"; kill "$(cat /tmp/qsd.pid)"' EXIT
{body}
"""


def test_host1_writes_through_the_group_portal(
    volume: str, docker_rig: DockerRig, topology: Topology
) -> None:
    body = f"""blockdev --getsize64 "$dev"
printf %s {shlex.quote(MARKER.decode())} | dd of="$dev" bs=512 seek=8 conv=notrunc,fsync status=none
"""
    status, out = topology["host1"].exec(["bash", "-c", _host1_script(docker_rig, volume, body)])
    assert status == 0, out
    assert out.split()[-1] == str(SIZE_MB * 1024 * 1024)
    path = lun_file(topology, docker_rig, VOLUME)
    status, block = topology["san"].exec(
        ["dd", f"if={path}", "bs=512", "skip=8", "count=1", "status=none"]
    )
    assert status == 0
    assert block.startswith(MARKER.decode())
    status, loops = topology["host1"].exec(["losetup", "-j", "/tmp/lun"])
    assert (status, loops.strip()) == (0, "")


def _ssh_script(rig: DockerRig, host: str, script: bytes) -> tuple[int, str]:
    """Send ``script`` to ``host`` as the driver does: ``ssh host sh -s`` as oneadmin,
    through the rig's ssh_config (strict host key checking, the rig's key only)."""
    ssh = need_executable("ssh", "openssh-client")
    done = subprocess.run(
        [ssh, "-F", str(rig.ssh_config), host, "sh -s"],
        input=script,
        capture_output=True,
        timeout=120,
        check=False,
    )
    return done.returncode, (done.stdout + done.stderr).decode(errors="replace")


def test_host1_logs_in_with_the_iscsiadm_stand_in(
    volume: str, docker_rig: DockerRig, topology: Topology
) -> None:
    """The driver's own login/logout scripts (eqliscsi.opennebula.iscsiadm, sudo as
    oneadmin, CHAP through the shipped helper) run on host1 against the group IP the
    SAN reports; the stand-in's session names /dev/iscsi/<volume>; bytes written there
    land in the san's backing file."""
    group_ip = asyncio.run(_group_ip(docker_rig))
    node = ia.Node(volume, ia.TargetPortal(group_ip, 3260))
    creds = ia.ChapCredentials(CHAP_USER, Secret(CHAP_SECRET, origin="test"))
    # The hosts' sudoers admit only the root-owned helper copy (rig/docker/host).
    login = ia.login_script(node, chap=creds, helper=NODE_AUTH_HELPER, sudo=True)
    status, out = _ssh_script(docker_rig, "host1", login.stdin_bytes())
    assert status == 0, out
    host1 = topology["host1"]
    marker = b"eqliscsi-docker-standin-marker"
    try:
        status, size = host1.exec(["blockdev", "--getsize64", f"/dev/iscsi/{VOLUME}"])
        assert (status, size.strip()) == (0, str(SIZE_MB * 1024 * 1024)), size
        write = (
            f"printf %s {shlex.quote(marker.decode())} | "
            f"dd of=/dev/iscsi/{VOLUME} bs=512 seek=16 conv=notrunc,fsync status=none"
        )
        status, out = host1.exec(["sh", "-c", write])
        assert status == 0, out
        status, sessions = host1.exec(["iscsiadm", "-m", "session"])
        assert status == 0 and volume in sessions, sessions
        # The loop device this login attached: judged alone after the logout, since
        # `losetup -a` lists every loop device of the Docker host, not only host1's.
        status, loop = host1.exec(["readlink", "-f", f"/dev/iscsi/{VOLUME}"])
        assert status == 0 and loop.strip().startswith("/dev/loop"), loop
    finally:
        logout = ia.logout_script(node, sudo=True)
        status, out = _ssh_script(docker_rig, "host1", logout.stdin_bytes())
    assert status == 0, out
    path = lun_file(topology, docker_rig, VOLUME)
    status, block = topology["san"].exec(
        ["dd", f"if={path}", "bs=512", "skip=16", "count=1", "status=none"]
    )
    assert status == 0
    assert block.startswith(marker.decode())
    # Logged out: no session, no device link, no loop device left on the Docker host.
    status, sessions = host1.exec(["iscsiadm", "-m", "session"])
    assert volume not in sessions
    assert host1.exec(["test", "-e", f"/dev/iscsi/{VOLUME}"])[0] != 0
    status, still = host1.exec(["losetup", loop.strip()])
    assert status != 0, f"{loop.strip()} still attached: {still}"


async def _group_ip(rig: DockerRig) -> str:
    async with open_session(endpoint(rig)) as s:
        return await SanOps(s, DATASTORE).group_ip()


def test_frontend_qemu_img_writes_marker_and_restart_keeps_everything(
    volume: str, docker_rig: DockerRig, topology: Topology
) -> None:
    """qemu-img on the frontend writes a marker over iSCSI; the san restarts; the
    volume, its target and the marker are still there, and the next operation works."""
    frontend = topology["frontend"]
    host, port = docker_rig.private_portal
    url = f"iscsi://{CHAP_USER}@{host}:{port}/{volume}/1"
    env_secret = f"LIBISCSI_CHAP_PASSWORD={shlex.quote(CHAP_SECRET.decode())}"
    write = f"""
set -eu
cd /tmp
qemu-img create -q -f qcow2 disk.qcow2 1M
qemu-io -c 'write -P 0x5a 0 64k' disk.qcow2 >/dev/null
export {env_secret}
qemu-img convert -n -O raw disk.qcow2 {url}
"""
    status, out = frontend.exec(["bash", "-c", write], user="oneadmin")
    assert status == 0, out
    before = san_model(topology, docker_rig)

    seconds = topology.restart("san")
    TIMINGS.append(f"san restart to ready: {seconds:.1f} s")
    assert seconds < 60

    after = san_model(topology, docker_rig)
    assert after["volumes"] == before["volumes"]
    # The marker, read back over iSCSI through the restarted group's redirect.
    read = f"""
set -eu
export {env_secret}
qemu-img convert -O raw {url} /tmp/back.raw
head -c 65536 /tmp/back.raw | tr -d Z | wc -c
head -c 65536 /tmp/back.raw | wc -c
"""
    status, out = frontend.exec(["bash", "-c", read], user="oneadmin")
    assert status == 0, out
    assert out.split() == ["0", "65536"]
    frontend.exec(["rm", "-f", "/tmp/back.raw"])

    # The host key survived (known_hosts still valid) and the next operation succeeds.
    async def grow() -> int:
        async with open_session(endpoint(docker_rig)) as s:
            ops = SanOps(s, DATASTORE)
            await ops.resize_volume(VOLUME, SIZE_MB * 2)
            info = await ops.volume_info(VOLUME)
            assert info is not None
            return info.size_mb

    assert asyncio.run(grow()) == SIZE_MB * 2
    result = asyncio.run(probe(Portal(*docker_rig.portal), volume, auth=chap()))
    assert [lun.size_bytes for lun in result.luns] == [SIZE_MB * 2 * 1024 * 1024]


# Run inside the frontend (eqliscsi is installed there): one create_volume against the
# san by name, printing "ok <iqn>" or "error <class>: <message>".
_FRONTEND_CREATE = """
import asyncio, sys
from eqliscsi.errors import EqliscsiError
from eqliscsi.san import commands as c
from eqliscsi.san.ops import SanOps, VolumeSpec
from eqliscsi.san.session import SanEndpoint, open_session
from eqliscsi.secret import Secret

async def main() -> None:
    ep = SanEndpoint(host="san", username=sys.argv[1], password=Secret.from_file(sys.argv[2]),
                     known_hosts=sys.argv[3], connect_timeout=5.0, command_timeout=4.0)
    async with open_session(ep) as s:
        ref = await SanOps(s, 100).create_volume(
            VolumeSpec(sys.argv[4], 150, access=(c.AccessRule(username=sys.argv[5]),)))
        print("ok", ref.iqn)

try:
    asyncio.run(main())
except EqliscsiError as e:
    print(f"error {type(e).__name__}: {e}")
    sys.exit(3)
"""


def test_partition_frontend_from_san_mid_operation(
    docker_rig: DockerRig, topology: Topology
) -> None:
    frontend, san = topology["frontend"], topology["san"]
    name = "dock-part-1"
    # Copy what the frontend needs: the script, the password (0600) and the san's key.
    key_line = docker_rig.known_hosts.read_text().splitlines()[1]  # "san <alg> <key>"
    for path, content in (
        ("/tmp/create.py", _FRONTEND_CREATE.encode()),
        ("/tmp/known_hosts", f"{key_line}\n".encode()),
        ("/tmp/san-password", docker_rig.password_file.read_bytes()),
    ):
        frontend.put_file(path, content, owner=ONEADMIN_UID)
    argv = [
        "python", "/tmp/create.py", docker_rig.account, "/tmp/san-password",
        "/tmp/known_hosts", name, CHAP_USER,
    ]  # fmt: skip
    # A slow group: every reply waits 0.4 s, so the create's commands are spread out.
    faults = f"{docker_rig.state_dir}/faults.json"
    san.put_file(faults, b'{"latency": 0.4}', mode=0o644)
    network = topology.network
    assert network is not None
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        job = pool.submit(frontend.exec, argv, user="oneadmin")
        # Cut the frontend off as soon as the volume exists on the group, before the
        # access record and the rest of the create have been sent.
        deadline = time.monotonic() + 60
        while not any(v["name"] == name for v in san_model(topology, docker_rig)["volumes"]):
            assert time.monotonic() < deadline, "the create never reached the group"
            assert not job.done(), job.result()
            time.sleep(0.1)
        network.disconnect(frontend.container)
        cut = time.monotonic()
        try:
            status, out = job.result(timeout=120)
            TIMINGS.append(
                f"partition: the frontend's create failed {time.monotonic() - cut:.1f} s "
                f"after the cut: {out.strip().splitlines()[-1:]}"
            )
        finally:
            network.connect(frontend.container, aliases=["frontend"])
    assert san.exec(["rm", "-f", faults])[0] == 0
    assert status == 3, out
    # One clear sentence naming the failure (a timeout or a lost connection).
    line = out.strip().splitlines()[-1]
    assert line.startswith(("error SanTimeout:", "error SanConnectionError:")), out
    assert line.endswith("."), line

    # Connectivity is back: the retry adopts the half-made volume and completes it.
    status, out = frontend.exec(argv, user="oneadmin")
    assert status == 0, out
    assert out.split()[0] == "ok"
    names = [v["name"] for v in san_model(topology, docker_rig)["volumes"]]
    assert sorted(n for n in names if n.startswith("dock-part")) == [name]

    async def records() -> list[str | None]:
        async with open_session(endpoint(docker_rig)) as s:
            return [r.username for r in await SanOps(s, DATASTORE).access_records(name)]

    assert asyncio.run(records()) == [CHAP_USER]


def test_group_password_is_in_no_environment_or_command_line(
    docker_rig: DockerRig, topology: Topology
) -> None:
    password = docker_rig.password_file.read_bytes()
    assert len(password) >= 16
    san = topology["san"]
    san.container.reload()
    config = san.container.attrs["Config"]
    assert password.decode() not in json.dumps(config)
    # Every process in the container: argv and environment.
    script = "for p in /proc/[0-9]*; do cat $p/cmdline $p/environ 2>/dev/null; echo; done"
    status, dump = san.exec(["sh", "-c", script])
    assert status == 0
    assert "rig.fake_eql" in dump  # the scan did see the fake's own command line
    assert password.decode() not in dump
    status, mode = san.exec(["stat", "-c", "%a %U", "/etc/eqliscsi/san-password"])
    assert (status, mode.strip()) == (0, "600 root")
