"""The driver's host-side iSCSI against real peers: OpenSSH, tgtd, libiscsi, loop.

Two namespaced hosts; the driver-side code (``eqliscsi.opennebula.iscsiadm``)
builds the scripts, OpenSSH carries them, the stand-in logs in with CHAP through
qemu-storage-daemon, and bytes written to ``/dev/iscsi/<volume>`` on one host are
read back on the other and from tgtd's backing file.
"""

from __future__ import annotations

import secrets
import select
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from eqliscsi.opennebula import iscsiadm as ia
from eqliscsi.secret import Secret
from rig.hosts import Host, HostRig
from rig.need import need_executable
from tests.integration import host_cases as cases

from .conftest import Tgt, need_host_rig, start_tgt

pytestmark = [pytest.mark.tgt, pytest.mark.slow]


def chap_user() -> str:
    # tgt accounts are global to a tgtd: one per volume keeps tests independent.
    return f"oneadmin-{secrets.token_hex(3)}"


def run_script(rig: HostRig, host: Host, script: ia.RemoteScript, what: str = "") -> None:
    r = subprocess.run(
        rig.ssh_argv(host, "sh", "-s"),
        input=script.stdin_bytes(),
        capture_output=True,
        timeout=120,
        check=False,
    )
    ia.check_script_result(
        script, r.returncode, r.stderr.decode(errors="replace"), host=host.name, what=what
    )


def ssh(rig: HostRig, host: Host, command: str, *, check: bool = True) -> str:
    r = subprocess.run(
        rig.ssh_argv(host, command), capture_output=True, text=True, timeout=60, check=False
    )
    if check:
        assert r.returncode == 0, (command, r.returncode, r.stderr)
    return r.stdout


def sessions(rig: HostRig, host: Host) -> list[ia.SessionInfo]:
    r = subprocess.run(
        rig.ssh_argv(host, ia.render(ia.session_argv())),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return ia.parse_sessions(r.stdout, status=r.returncode)


def volume_name() -> str:
    return f"vol-{secrets.token_hex(3)}.7"


def test_login_write_logout_then_read_on_other_host(host_rig: HostRig, tgt: Tgt) -> None:
    user = chap_user()
    h1, h2 = host_rig.hosts
    secret = Secret(secrets.token_hex(8).encode(), origin="test")
    vol = volume_name()
    iqn = tgt.add_volume(vol, user, secret)
    node = ia.Node(iqn, ia.TargetPortal(tgt.address, tgt.port))
    chap = ia.ChapCredentials(user, secret)
    marker = f"eqliscsi-marker-{secrets.token_hex(8)}"

    run_script(host_rig, h1, ia.login_script(node, chap=chap), what=vol)
    link = f"/dev/iscsi/{vol}"
    assert ssh(host_rig, h1, f"readlink {link}").strip().startswith("/dev/loop")
    assert ssh(host_rig, h1, f"test -b {link} && echo block").strip() == "block"
    assert [s.iqn for s in sessions(host_rig, h1)] == [iqn]
    # h2 has its own /dev/iscsi: h1's link is not there.
    assert vol not in ssh(host_rig, h2, "ls -A /dev/iscsi")
    assert sessions(host_rig, h2) == []

    # The secret is in no process's argv on the host (qemu reads it from a file).
    for pid in host_rig.processes():
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        assert secret.reveal() not in cmdline
    # ... and the node record holds it, mode 0600, as open-iscsi keeps it.
    records = list((h1.etc_upper / "iscsi" / "nodes" / iqn).glob("*/default"))
    assert len(records) == 1
    assert oct(records[0].stat().st_mode & 0o777) == "0o600"
    assert f"node.session.auth.password = {secret.reveal_str()}" in records[0].read_text()

    # Logging in again is fine (idempotent: status 15 is success).
    run_script(host_rig, h1, ia.login_script(node, chap=chap), what=vol)
    assert len(sessions(host_rig, h1)) == 1

    ssh(host_rig, h1, f"printf '%s' {marker} | dd of={link} bs=4096 conv=sync,fsync "
                      "oflag=direct status=none")  # fmt: skip
    run_script(host_rig, h1, ia.logout_script(node), what=vol)
    assert ssh(host_rig, h1, "ls -A /dev/iscsi").strip() == ""
    assert sessions(host_rig, h1) == []
    assert not list((h1.etc_upper / "iscsi" / "nodes").glob(f"{iqn}/*/default"))
    # Logging out again is fine (status 21: nothing to log out of).
    run_script(host_rig, h1, ia.logout_script(node), what=vol)

    # The bytes are on the target...
    assert tgt.backing(vol).read_bytes()[: len(marker)] == marker.encode()
    # ... and host 2 reads them through its own login.
    run_script(host_rig, h2, ia.login_script(node, chap=chap), what=vol)
    got = ssh(host_rig, h2, f"dd if={link} bs=4096 count=1 iflag=direct status=none")
    assert got[: len(marker)] == marker
    assert vol not in ssh(host_rig, h1, "ls -A /dev/iscsi")
    run_script(host_rig, h2, ia.logout_script(node), what=vol)


def test_hosts_are_separate(host_rig: HostRig) -> None:
    h1, h2 = host_rig.hosts
    assert ssh(host_rig, h1, "hostname").strip() == "h1"
    assert ssh(host_rig, h2, "hostname").strip() == "h2"
    assert h1.address in ssh(host_rig, h1, "ip -4 -o addr show dev eth0")
    assert h2.address not in ssh(host_rig, h1, "ip -4 -o addr show")
    # Own system datastore directory: a file made on h1 is not on h2.
    ssh(
        host_rig,
        h1,
        "mkdir -p /var/lib/one/datastores/0/42 && touch /var/lib/one/datastores/0/42/x",
    )
    assert (h1.datastores / "0" / "42" / "x").exists()
    assert ssh(host_rig, h2, "test -e /var/lib/one/datastores/0/42/x; echo $?").strip() == "1"
    # Own node database.
    assert "h1" in ssh(host_rig, h1, "cat /etc/iscsi/initiatorname.iscsi")
    assert "h2" in ssh(host_rig, h2, "cat /etc/iscsi/initiatorname.iscsi")


def test_standin_rejects_forms_the_driver_does_not_build(host_rig: HostRig) -> None:
    h1 = host_rig.hosts[0]
    for form in (
        "iscsiadm -m node -o update -n node.session.auth.password -v x",
        "iscsiadm -m discovery -t st -p 10.0.0.1",
        "iscsiadm -m node -T iqn.2001-05.com.example:x -p 10.0.0.1:3260 -l",
        "iscsiadm",
    ):
        r = subprocess.run(
            host_rig.ssh_argv(h1, form), capture_output=True, text=True, timeout=60, check=False
        )
        assert r.returncode == ia.IscsiadmStatus.INVAL, form
        assert "does not implement" in r.stderr


def test_down_leaves_nothing_behind(tmp_path: Path) -> None:
    need_host_rig()
    rig = HostRig(tmp_path / "rig", count=1, data_lun=1)
    (tmp_path / "tgt").mkdir()
    rig.up()
    try:
        (host,) = rig.hosts
        with start_tgt(rig.gateway, tmp_path / "tgt") as t:
            secret = Secret(b"down-secret-123", origin="test")
            user = chap_user()
            vol = volume_name()
            iqn = t.add_volume(vol, user, secret)
            node = ia.Node(iqn, ia.TargetPortal(t.address, t.port))
            # Logged in while we pull the plug: qemu-storage-daemon, a FUSE mount and
            # a loop device exist, and must all go.
            run_script(rig, host, ia.login_script(node, chap=ia.ChapCredentials(user, secret)))
            pids = rig.processes()
            # (pid, start time): a pid alone may be reused by an unrelated process.
            started = {p: _start_time(p) for p in pids}
            names = {Path(f"/proc/{p}/comm").read_text().strip() for p in pids}
            assert {"sshd", "sleep", "qemu-storage-da"} <= names  # comm: 15 chars
            loops = rig.loop_devices()
            assert len(loops) == 1
            netns = rig.netns_names()
            rig.down()
    finally:
        rig.down()
    survivors = [p for p in pids if _alive(p) and _start_time(p) == started[p]]
    assert survivors == [], [Path(f"/proc/{p}/cmdline").read_bytes() for p in survivors]
    listed = subprocess.run(
        ["ip", "netns", "list"], capture_output=True, text=True, check=False
    ).stdout
    assert not any(n in listed for n in netns)
    links = subprocess.run(
        ["ip", "-o", "link", "show"], capture_output=True, text=True, check=False
    ).stdout
    assert rig.bridge not in links
    assert rig.loop_devices() == []
    # (A loop device number may be reused by someone else at once, so check by
    # backing file, which loop_devices does, rather than by name.)
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                assert str(tmp_path) not in (p / "mountinfo").read_text()
            except OSError:
                continue


def _start_time(pid: int) -> str | None:
    try:
        # Field 22 of /proc/PID/stat, counted after the ")" that ends comm.
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _alive(pid: int) -> bool:
    try:
        return "State:\tZ" not in Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False


def test_two_rigs_get_separate_subnets(tmp_path: Path) -> None:
    need_host_rig()
    with HostRig(tmp_path / "a", count=1) as a, HostRig(tmp_path / "b", count=1) as b:
        assert a.subnet != b.subnet
        assert a.bridge != b.bridge
        (ha,), (hb,) = a.hosts, b.hosts
        # No route from one rig's host to another rig's: nothing is even sent.
        r = subprocess.run(
            ha.nsenter("ip", "route", "get", hb.address),
            capture_output=True,
            text=True,
            check=False,
        )
        assert r.returncode != 0
        assert "unreachable" in r.stderr.lower()
        r = subprocess.run(
            ha.nsenter("ip", "route", "get", a.gateway), capture_output=True, text=True, check=False
        )
        assert r.returncode == 0


class StandinHost:
    """A namespaced rig host as a :class:`~tests.integration.host_cases.IscsiHost`."""

    link_prefix = "/dev/loop"

    def __init__(self, rig: HostRig, host: Host) -> None:
        self.rig, self.host, self.name = rig, host, host.name

    def run(self, script: ia.RemoteScript, what: str = "") -> None:
        run_script(self.rig, self.host, script, what)

    def sh(self, command: str, *, check: bool = True) -> str:
        return ssh(self.rig, self.host, command, check=check)

    def sessions(self) -> list[ia.SessionInfo]:
        return sessions(self.rig, self.host)

    def wait_link(self, volume: str, *, present: bool) -> str:
        # The stand-in names the disk before --login returns: no wait needed.
        out = ssh(self.rig, self.host, f"readlink -e /dev/iscsi/{volume}", check=False)
        assert bool(out.strip()) is present, (volume, out)
        return out.strip()

    def argv_of_all_processes(self) -> bytes:
        found = []
        for pid in self.rig.processes():
            try:
                found.append(Path(f"/proc/{pid}/cmdline").read_bytes())
            except OSError:
                continue
        return b"\n".join(found)

    def set_safe_logout(self, on: bool) -> None:
        conf = "/etc/iscsi/iscsid.conf"
        cmd = f"echo 'iscsid.safe_logout = Yes' > {conf}" if on else f"rm -f {conf}"
        ssh(self.rig, self.host, cmd)


class TgtExporter:
    """The rig's tgtd as an :class:`~tests.integration.host_cases.Exporter`."""

    def __init__(self, rig: HostRig, tgt: Tgt) -> None:
        self.rig, self.tgt = rig, tgt

    def export(self, volume: str, user: str, secret: Secret) -> cases.Export:
        iqn = self.tgt.add_volume(volume, user, secret)
        node = ia.Node(iqn, ia.TargetPortal(self.tgt.address, self.tgt.port))
        return cases.Export(volume, node, user, secret, self.tgt.backing(volume))

    def refused_portal(self) -> ia.TargetPortal:
        with socket.socket() as s:
            s.bind((self.rig.gateway, 0))
            port = int(s.getsockname()[1])
        return ia.TargetPortal(self.rig.gateway, port)

    @contextmanager
    def relayed_portal(self, exp: cases.Export) -> Iterator[ia.TargetPortal]:
        # A relay on the bridge address: tgtd, bound to its own port there, still
        # advertises that port in SendTargets.
        gw, port = exp.node.portal.address, exp.node.portal.port
        proc = subprocess.Popen(
            [sys.executable, "-c", cases.RELAY_PY, gw, "0", gw, str(port)],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            assert proc.stdout is not None
            ready, _, _ = select.select([proc.stdout], [], [], 30)
            line = proc.stdout.readline().decode() if ready else ""
            assert line.startswith("ready "), f"the relay did not start: {line!r}"
            yield ia.TargetPortal(gw, int(line.split()[1]))
        finally:
            proc.kill()
            proc.wait(timeout=10)


@pytest.fixture
def host(host_rig: HostRig) -> StandinHost:
    return StandinHost(host_rig, host_rig.hosts[1])


@pytest.fixture
def target(host_rig: HostRig, tgt: Tgt) -> TgtExporter:
    return TgtExporter(host_rig, tgt)


# The shared bodies (tests/integration/host_cases.py); the real-iscsiadm tier in
# tests/integration/guest/test_driver_iscsiadm.py calls the same.


def test_shared_login_idempotent_and_data_on_target(host: StandinHost, target: TgtExporter) -> None:
    cases.case_login_is_idempotent_and_data_lands_on_the_target(host, target)


def test_wrong_chap_secret_is_a_typed_auth_error(host: StandinHost, target: TgtExporter) -> None:
    cases.case_wrong_secret_is_auth_error(host, target)


def test_no_record_for_unknown_target(host: StandinHost, target: TgtExporter) -> None:
    cases.case_unknown_target_has_no_record(host, target)


def test_discovery_of_a_refused_portal_is_a_typed_error(
    host: StandinHost, target: TgtExporter
) -> None:
    need_executable("iscsi-ls", "libiscsi-bin")
    cases.case_refused_portal_fails_discovery(host, target)


def test_records_are_filed_under_the_advertised_portal(
    host: StandinHost, target: TgtExporter
) -> None:
    cases.case_records_are_filed_under_the_advertised_portal(host, target)


def test_logout_of_mounted_disk_with_safe_logout_is_busy(
    host: StandinHost, target: TgtExporter
) -> None:
    need_executable("mkfs.ext4", "e2fsprogs")
    cases.case_logout_of_mounted_disk_is_busy_then_retried(host, target)
