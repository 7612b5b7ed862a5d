"""Host checks against the embedded rig's namespaced hosts (``rig/hosts/``).

The fake group's SSH CLI listens on 127.0.0.1 and its iSCSI portal on the rig's bridge
address, the only address the hosts can reach.  Each host is first made clean (the
iscsid.conf, iface, udev files and oneadmin a real host would have, written inside the
host's own mount namespace), then one thing at a time is broken and put back.
"""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from eqliscsi.cli.checks import ALL_CHECKS, CheckResult, Section, Status
from eqliscsi.cli.checks.inputs import reference_remotes
from eqliscsi.cli.preflight import run_preflight
from eqliscsi.san.commands import AccessRule
from eqliscsi.san.ops import SanOps, VolumeSpec
from eqliscsi.san.session import open_session
from rig.hosts import Host, HostRig
from rig.targets.tgt import free_port
from tests.integration.fake_eql.conftest import PASSWORD, start_fake, stop_fake
from tests.integration.hosts.conftest import need_host_rig
from tests.integration.preflight.conftest import CHAP_SECRET, CHAP_USER, DS_ID, Group, _seed

pytestmark = [pytest.mark.tgt, pytest.mark.slow]

ISCSID = f"""\
node.startup = manual
node.session.auth.authmethod = CHAP
node.session.auth.username = {CHAP_USER}
node.session.auth.password = {CHAP_SECRET}
node.session.cmds_max = 1024
node.session.queue_depth = 128
node.session.iscsi.FastAbort = No
"""


def ssh(rig: HostRig, host: Host, command: str) -> None:
    done = subprocess.run(rig.ssh_argv(host, command), capture_output=True, text=True,
                          timeout=60, check=False)  # fmt: skip
    assert done.returncode == 0, (command, done.stderr)


def put(rig: HostRig, host: Host, path: str, text: str) -> None:
    argv = rig.ssh_argv(host, f"mkdir -p $(dirname {path}) && cat > {path}")
    done = subprocess.run(argv, input=text, capture_output=True, text=True, timeout=60,
                          check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr


@pytest.fixture(scope="module")
def rig_group(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[HostRig, Group]]:
    need_host_rig()
    rig = HostRig(tmp_path_factory.mktemp("hostrig"), count=2, data_lun=1)
    rig.up()
    try:
        d = tmp_path_factory.mktemp("rig-group")
        pw = d / "fake-password"
        pw.write_text(PASSWORD + "\n")
        pw.chmod(0o600)
        portal = f"{rig.gateway}:{free_port()}"
        fake = start_fake(d / "state", pw, iscsi_portal=portal)
        try:
            (d / "known_hosts").write_text(fake.host_key_line)
            group = Group(fake, portal, d)
            asyncio.run(_seed(group))
            ref = reference_remotes()
            assert ref is not None
            udev_dir = d / "usr-lib-udev"
            udev_dir.mkdir()
            for host in rig.hosts:
                # /usr is the machine's own: give the host a private /usr/lib/udev.
                subprocess.run(host.nsenter("mount", "--bind", str(udev_dir), "/usr/lib/udev"),
                               check=True, timeout=30, capture_output=True)  # fmt: skip
                put(rig, host, "/etc/iscsi/iscsid.conf", ISCSID)
                put(rig, host, "/etc/iscsi/ifaces/eql0",
                    "iface.iscsi_ifacename = eql0\niface.net_ifacename = eth0\n"
                    "iface.transport_name = tcp\n")  # fmt: skip
                put(rig, host, "/etc/udev/rules.d/99-eqliscsi.rules",
                    (ref / "tm/eqliscsi/99-eqliscsi.rules").read_text())  # fmt: skip
                ssh(rig, host, "id oneadmin >/dev/null 2>&1 || useradd -M -G disk oneadmin")
            (udev_dir / "eqliscsi-udev-name").write_bytes(
                (ref / "tm/eqliscsi/eqliscsi-udev-name").read_bytes()
            )
            yield rig, group
        finally:
            stop_fake(fake)
    finally:
        rig.down()


def run_hosts(rig: HostRig, group: Group, tmp: Path) -> dict[str, CheckResult]:
    conf = group.conf(tmp, extra="EQL_IFACE=eql0\n")
    opts = group.options(tmp, conf, hosts=tuple(h.name for h in rig.hosts),
                         ssh_config=rig.ssh_config, host_user="")  # fmt: skip
    checks = [c for c in ALL_CHECKS if c.section in (Section.SAN, Section.HOSTS)]
    results = asyncio.run(run_preflight(opts, checks))
    for r in results:
        assert PASSWORD not in r.found + r.fix and CHAP_SECRET not in r.found + r.fix
    return {f"{r.id}@{r.subject}" if r.subject else r.id: r for r in results}


def test_clean_hosts_pass(rig_group: tuple[HostRig, Group], tmp_path: Path) -> None:
    rig, group = rig_group
    res = run_hosts(rig, group, tmp_path)
    bad = {k: (r.status.value, r.found) for k, r in res.items()
           if r.section is Section.HOSTS and r.status is not Status.PASS}  # fmt: skip
    assert not bad, bad
    assert "eth0" in res["host.iface@h1"].found
    assert "target(s)" in res["host.discovery@h2"].found


BREAKS = [
    pytest.param("sed -i 's/= manual/= automatic/' /etc/iscsi/iscsid.conf",
                 "sed -i 's/= automatic/= manual/' /etc/iscsi/iscsid.conf",
                 "host.node-startup", Status.FAIL, "automatic", id="node-startup-automatic"),
    pytest.param("mv /etc/iscsi/ifaces/eql0 /etc/iscsi/eql0.off",
                 "mv /etc/iscsi/eql0.off /etc/iscsi/ifaces/eql0",
                 "host.iface", Status.FAIL, "does not exist", id="iface-missing"),
    pytest.param("mv /etc/udev/rules.d/99-eqliscsi.rules /etc/udev/99.off",
                 "mv /etc/udev/99.off /etc/udev/rules.d/99-eqliscsi.rules",
                 "host.udev", Status.FAIL, "99-eqliscsi.rules is missing", id="udev-rule-missing"),
    pytest.param("gpasswd -d oneadmin disk", "usermod -a -G disk oneadmin",
                 "host.disk-group", Status.FAIL, "not in group disk", id="oneadmin-not-in-disk"),
]  # fmt: skip


@pytest.mark.parametrize(("breaks", "repairs", "cid", "status", "needle"), BREAKS)
def test_one_fault_at_a_time(
    rig_group: tuple[HostRig, Group], tmp_path: Path, breaks: str, repairs: str, cid: str,
    status: Status, needle: str,
) -> None:  # fmt: skip
    rig, group = rig_group
    h1 = rig.hosts[0]
    ssh(rig, h1, breaks)
    try:
        res = run_hosts(rig, group, tmp_path)
    finally:
        ssh(rig, h1, repairs)
    broken = res[f"{cid}@h1"]
    assert broken.status is status, broken
    assert needle in broken.found
    assert broken.fix
    assert res[f"{cid}@h2"].status is Status.PASS, res[f"{cid}@h2"]


def test_leftover_node_record_of_a_deleted_volume(
    rig_group: tuple[HostRig, Group], tmp_path: Path
) -> None:
    """Discovery leaves a record for every volume; once one is deleted, its record is stale."""
    rig, group = rig_group

    async def san(create: bool) -> None:
        async with open_session(group.endpoint()) as session:
            ops = SanOps(session, DS_ID)
            if create:
                rule = AccessRule(username=CHAP_USER)
                await ops.create_volume(VolumeSpec("doomed", 15, pool="default", access=(rule,)))
            else:
                assert await ops.delete_volume("doomed")

    asyncio.run(san(True))
    first = run_hosts(rig, group, tmp_path)  # its discovery records "doomed" on each host
    assert first["host.node-records@h1"].status is Status.PASS
    asyncio.run(san(False))
    res = run_hosts(rig, group, tmp_path)
    left = res["host.node-records@h1"]
    assert left.status is Status.WARN, left
    assert left.found.endswith("-doomed")
    assert "-o delete" in left.fix
    assert res["host.sessions@h1"].status is Status.PASS
