"""The driver's host-side iSCSI against real peers: OpenSSH, tgtd, libiscsi, loop.

Two namespaced hosts; the driver-side code (``eqliscsi.opennebula.iscsiadm``)
builds the scripts, OpenSSH carries them, the stand-in logs in with CHAP through
qemu-storage-daemon, and bytes written to ``/dev/iscsi/<volume>`` on one host are
read back on the other and from tgtd's backing file.
"""

from __future__ import annotations

import secrets
import subprocess
import time
from pathlib import Path

import pytest

from eqliscsi.opennebula import iscsiadm as ia
from eqliscsi.secret import Secret
from rig.hosts import Host, HostRig
from rig.need import need_executable

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


def test_wrong_chap_secret_is_a_typed_auth_error(host_rig: HostRig, tgt: Tgt) -> None:
    user = chap_user()
    h1 = host_rig.hosts[0]
    vol = volume_name()
    iqn = tgt.add_volume(vol, user, Secret(b"right-secret-01", origin="test"))
    node = ia.Node(iqn, ia.TargetPortal(tgt.address, tgt.port))
    wrong = ia.ChapCredentials(user, Secret(b"wrong-secret-02", origin="test"))
    with pytest.raises(ia.IscsiadmAuthError) as exc:
        run_script(host_rig, h1, ia.login_script(node, chap=wrong), what=vol)
    assert exc.value.status == ia.IscsiadmStatus.LOGIN_AUTH_FAILED
    assert exc.value.op is ia.Op.LOGIN
    assert "wrong-secret-02" not in str(exc.value)
    assert sessions(host_rig, h1) == []
    assert ssh(host_rig, h1, "ls -A /dev/iscsi").strip() == ""
    # The right secret then works: the helper rewrote the record.
    right = ia.ChapCredentials(user, Secret(b"right-secret-01", origin="test"))
    run_script(host_rig, h1, ia.login_script(node, chap=right), what=vol)
    run_script(host_rig, h1, ia.logout_script(node), what=vol)


def test_logout_of_mounted_disk_with_safe_logout_is_busy(host_rig: HostRig, tgt: Tgt) -> None:
    need_executable("mkfs.ext4", "e2fsprogs")
    h2 = host_rig.hosts[1]
    user, secret = chap_user(), Secret(secrets.token_hex(8).encode(), origin="test")
    vol = volume_name()
    node = ia.Node(tgt.add_volume(vol, user, secret), ia.TargetPortal(tgt.address, tgt.port))
    run_script(host_rig, h2, ia.login_script(node, chap=ia.ChapCredentials(user, secret)))
    ssh(host_rig, h2, "echo 'iscsid.safe_logout = Yes' > /etc/iscsi/iscsid.conf")
    try:
        # The mount point is in the host's private /var/lib overlay; the mount itself
        # lives only in the host's mount namespace.
        mnt = f"/var/lib/one/datastores/mnt-{vol}"
        ssh(host_rig, h2, f"mkfs.ext4 -q /dev/iscsi/{vol} && mkdir -p {mnt} && "
                          f"mount /dev/iscsi/{vol} {mnt} && echo data > {mnt}/f")  # fmt: skip
        started = time.monotonic()
        with pytest.raises(ia.IscsiadmBusyError):
            run_script(host_rig, h2, ia.logout_script(node), what=vol)
        # Retried, one second apart, before giving up.
        assert time.monotonic() - started >= ia.LOGOUT_ATTEMPTS - 1.5
        assert [s.iqn for s in sessions(host_rig, h2)] == [node.iqn]
        ssh(host_rig, h2, f"umount {mnt} && rmdir {mnt}")
        run_script(host_rig, h2, ia.logout_script(node), what=vol)
        assert sessions(host_rig, h2) == []
    finally:
        ssh(host_rig, h2, "rm -f /etc/iscsi/iscsid.conf", check=False)


def test_no_record_for_unknown_target(host_rig: HostRig, tgt: Tgt) -> None:
    h1 = host_rig.hosts[0]
    node = ia.Node(
        "iqn.2001-05.com.equallogic:0-8a0906-000000000-0000000000000000-absent",
        ia.TargetPortal(tgt.address, tgt.port),
    )
    with pytest.raises(ia.IscsiadmNoRecordsError):
        run_script(host_rig, h1, ia.login_script(node))


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
            ha.nsenter("ip", "route", "get", a.gateway), capture_output=True, check=False
        )
        assert r.returncode == 0
