"""Host checks over canned outputs of the host script, section by section."""

from __future__ import annotations

import hashlib
import re
import subprocess
from pathlib import Path

import pytest

from eqliscsi.cli.checks import hosts as h
from eqliscsi.cli.checks.base import CheckFn, Status
from eqliscsi.cli.checks.hosts import HostFacts, host_script, parse_host_output
from eqliscsi.cli.checks.san import VolumeFacts
from eqliscsi.opennebula.config import EqlConfig
from eqliscsi.san.errors import SanAuthError
from eqliscsi.san.parsers import VolumeInfo
from tests.unit.preflight.conftest import CHAP_SECRET, GOOD_CONF, make_options, run

IQN = "iqn.2001-05.com.equallogic:0-8a0906-012345678-0123456789abcdef-"
ISCSID = """\
node.startup = manual
node.session.auth.authmethod = CHAP
node.session.auth.username = oneadmin
node.session.cmds_max = 1024
node.session.queue_depth = 128
node.session.iscsi.FastAbort = No
"""
LINKS = """\
1: lo: <LOOPBACK,UP,LOWER_UP> mtu 65536 qdisc noqueue state UNKNOWN mode DEFAULT
2: eth0@if7: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 9000 qdisc noqueue state UP mode DEFAULT
3: eth1: <BROADCAST,MULTICAST> mtu 1500 qdisc noop state DOWN mode DEFAULT
"""
GOOD = {
    "whoami": ("oneadmin", 0),
    "oneadmin": ("oneadmin disk kvm", 0),
    "iscsiadm": ("/usr/sbin/iscsiadm", 0),
    "iscsid-conf": (ISCSID, 0),
    "hash-node": (hashlib.sha256(CHAP_SECRET.encode()).hexdigest(), 0),
    "hash-node-in": ("", 1),
    "iface": ("iface.iscsi_ifacename = eql0\niface.net_ifacename = eth0\n", 0),
    "links": (LINKS, 0),
    "route": ("192.0.2.10 dev eth0 src 192.0.2.20 uid 0", 0),
    "udev": (f"{'a' * 64}  {h.UDEV_RULE}\n{'b' * 64}  {h.UDEV_HELPER}", 0),
    "sessions": (f"tcp: [1] 192.0.2.10:3260,1 {IQN}one-1 (non-flash)", 0),
    "nodes": (f"{IQN}one-1", 0),
    "discovery": (f"192.0.2.10:3260,1 {IQN}one-1\n192.0.2.10:3260,1 {IQN}one-2", 0),
}


def canned(**changes: tuple[str, int]) -> str:
    """The host script's output with some sections replaced."""
    sections = {**GOOD, **changes}
    return "".join(f"@@eqliscsi {k}\n{v}\n@@rc {rc}\n" for k, (v, rc) in sections.items())


def san(*names: str) -> VolumeFacts:
    vols = tuple(VolumeInfo(n, 10, IQN + n, "eqliscsi ds=1", "online", 0, {}) for n in names)
    return VolumeFacts(vols, len(vols))


def test_parse_round_trip() -> None:
    facts = parse_host_output("banner\n" + canned(nodes=("", 2)))
    assert facts.text("iscsiadm") == "/usr/sbin/iscsiadm"
    assert facts.rc("nodes") == 2
    assert facts.rc("absent") == 127


CASES = [
    # (check, changed sections, expected status, words in found)
    (h.check_ssh, {}, Status.PASS, "oneadmin"),
    (h.check_iscsiadm, {}, Status.PASS, "/usr/sbin/iscsiadm"),
    (h.check_iscsiadm, {"iscsiadm": ("", 1)}, Status.FAIL, "not installed"),
    (h.check_node_startup, {}, Status.PASS, "manual"),
    (h.check_node_startup, {"iscsid-conf": (ISCSID.replace("= manual", "= automatic"), 0)},
     Status.FAIL, "automatic"),
    (h.check_node_startup, {"iscsid-conf": ("", 2)}, Status.FAIL, "cannot be read"),
    (h.check_chap, {}, Status.PASS, "matches"),
    (h.check_chap, {"hash-node": (hashlib.sha256(b"other").hexdigest(), 0)}, Status.FAIL,
     "differs"),
    (h.check_chap, {"hash-node": ("", 1)}, Status.FAIL, "differs"),
    (h.check_chap, {"iscsid-conf": (ISCSID.replace("= CHAP", "= None"), 0)}, Status.FAIL,
     "authmethod = None"),
    (h.check_chap, {"iscsid-conf": (ISCSID.replace("= oneadmin", "= root"), 0)}, Status.FAIL,
     "root"),
    (h.check_tuning, {}, Status.PASS, "suggested"),
    (h.check_tuning, {"iscsid-conf": ("node.startup = manual\n", 0)}, Status.WARN,
     "cmds_max = unset"),
    (h.check_iface, {}, Status.PASS, "MTU 9000 (jumbo frames)"),
    (h.check_iface, {"iface": ("cat: /etc/iscsi/ifaces/eql0: No such file", 1)}, Status.FAIL,
     "does not exist"),
    (h.check_iface, {"iface": ("iface.net_ifacename = <empty>\n", 0)}, Status.FAIL,
     "not bound"),
    (h.check_iface, {"iface": ("iface.net_ifacename = eth1\n", 0)}, Status.FAIL, "down"),
    (h.check_iface, {"iface": ("iface.net_ifacename = eth7\n", 0)}, Status.FAIL,
     "does not exist"),
    (h.check_discovery, {}, Status.PASS, "2 target(s)"),
    (h.check_discovery, {"discovery": ("iscsiadm: Login failed", 24)}, Status.FAIL, ""),
    (h.check_discovery, {"discovery": ("iscsiadm: connection refused", 4)}, Status.FAIL, ""),
    (h.check_udev, {}, Status.PASS, "installed"),
    (h.check_udev, {"udev": (f"{'a' * 64}  {h.UDEV_RULE}", 1)}, Status.FAIL, h.UDEV_HELPER),
    (h.check_udev, {"udev": ("", 1)}, Status.FAIL, h.UDEV_RULE),
    (h.check_disk_group, {}, Status.PASS, "disk"),
    (h.check_disk_group, {"oneadmin": ("oneadmin kvm", 0)}, Status.FAIL, "not in group disk"),
    (h.check_disk_group, {"oneadmin": ("id: 'oneadmin': no such user", 1)}, Status.FAIL,
     "no oneadmin"),
    (h.check_sessions, {}, Status.PASS, "1 session(s)"),
    (h.check_sessions, {"sessions": ("iscsiadm: No active sessions.", 21)}, Status.PASS,
     "0 session(s)"),
    (h.check_sessions, {"sessions": (f"tcp: [2] 192.0.2.10:3260,1 {IQN}gone (non-flash)", 0)},
     Status.FAIL, "gone"),
    (h.check_node_records, {}, Status.PASS, "1 node record(s)"),
    (h.check_node_records, {"nodes": (f"{IQN}one-1\n{IQN}gone\niqn.2000-01.other:x", 0)},
     Status.WARN, "gone"),
    (h.check_node_records, {"nodes": ("ls: cannot open directory: Permission denied", 2)},
     Status.SKIP, "cannot be read"),
    # where oneadmin cannot list /etc/iscsi/nodes: 'sudo -n iscsiadm -m node'
    (h.check_node_records, {"nodes": (f"192.0.2.10:3260,1 {IQN}one-1\n"
                                      f"192.0.2.10:3260,1 {IQN}gone", 0)},
     Status.WARN, "gone"),
    (h.check_node_records, {"nodes": (f"192.0.2.10:3260,1 {IQN}one-1", 0)},
     Status.PASS, "1 node record(s)"),
    (h.check_node_records, {"nodes": ("iscsiadm: No records found", 21)},
     Status.PASS, "no node records"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("fn", "changes", "status", "needle"),
    [pytest.param(*c, id=f"{c[0].__name__[6:]}-{'-'.join(c[1]) or 'good'}-{i}")
     for i, c in enumerate(CASES)],
)  # fmt: skip
async def test_host_checks(
    tmp_path: Path, fn: CheckFn, changes: dict[str, tuple[str, int]], status: Status, needle: str
) -> None:
    opts = make_options(tmp_path)
    facts = parse_host_output(canned(**changes))
    f = await run(fn, opts, "h1", host__h1=facts, volumes=san("one-1", "one-2"))
    assert f.status is status, f
    assert needle in f.found
    assert CHAP_SECRET not in f.found + f.fix
    if status in (Status.FAIL, Status.WARN):
        assert f.fix.endswith(".")
    if status is Status.PASS:
        assert f.fix == ""


async def test_default_iface_uses_the_route(tmp_path: Path) -> None:
    conf = GOOD_CONF.replace("EQL_IFACE=eql0", "EQL_IFACE=default")
    f = await run(h.check_iface, make_options(tmp_path, conf), "h1",
                  host__h1=parse_host_output(canned(iface=("", 0))))  # fmt: skip
    assert f.status is Status.PASS and "eth0" in f.found
    f = await run(h.check_iface, make_options(tmp_path, conf), "h1",
                  host__h1=parse_host_output(canned(route=("", 2))))  # fmt: skip
    assert f.status is Status.FAIL and "no route" in f.found


async def test_unreachable_host(tmp_path: Path) -> None:
    down = h.HostUnreachable("ssh: connect to host h1 port 22: No route")
    f = await run(h.check_ssh, make_options(tmp_path), "h1", host__h1=down)
    assert f.status is Status.FAIL and "No route" in f.found and "ssh-copy-id" in f.fix
    f = await run(h.check_iscsiadm, make_options(tmp_path), "h1",
                  host__h1=h.HostUnreachable("x"))  # fmt: skip
    assert f.status is Status.SKIP and "host.ssh" in f.found


async def test_stale_sessions_skip_without_san(tmp_path: Path) -> None:
    f = await run(h.check_sessions, make_options(tmp_path), "h1",
                  host__h1=parse_host_output(canned()), session=SanAuthError("no"))  # fmt: skip
    assert f.status is Status.SKIP


@pytest.mark.parametrize("shell", ["/bin/sh", "/bin/bash"])
def test_script_runs_under_sh_and_keeps_secrets_home(tmp_path: Path, shell: str) -> None:
    """The real script, fed on stdin to dash and to bash (which reads it line by line):
    every section is labelled and has a status."""
    opts = make_options(tmp_path)
    assert opts.config.resolved is not None
    cfg = opts.config.resolved.config
    script = host_script(cfg)
    assert CHAP_SECRET not in script
    assert "iscsiadm -m discoverydb -t sendtargets -p 192.0.2.10:3260 -I eql0 -o new" in script
    done = subprocess.run([shell, "-s"], input=script, capture_output=True, text=True,
                          timeout=30, check=False, env={"PATH": "/nonexistent"})  # fmt: skip
    facts = parse_host_output(done.stdout)
    assert set(facts.sections) == set(GOOD)
    assert facts.rc("discovery") == 127  # no iscsiadm on this PATH


def test_script_quotes_the_iface() -> None:
    script = host_script(EqlConfig(host="192.0.2.1", iface="a.b:c-1"), sudo=True)
    assert "sudo -n cat /etc/iscsi/ifaces/a.b:c-1" in script
    assert isinstance(parse_host_output(""), HostFacts)


def test_sudo_only_for_iscsiadm_and_files_oneadmin_cannot_read() -> None:
    """OpenNebula's sudoers lets oneadmin run iscsiadm, not grep, cat or ls."""
    script = host_script(EqlConfig(host="192.0.2.1", iface="eql0"), sudo=True)
    for line in script.splitlines():
        for part in line.split("sudo -n ")[1:]:
            if part.startswith("iscsiadm "):
                continue
            # any other command under sudo is the else branch of a readability test
            before = line.split("sudo -n " + part)[0]
            assert "; else " in before[-8:], line
            path = before.split("if [ -r ")[1].split(" ]")[0]
            assert f"[ ! -e {path} ]" in before, line
    assert "if [ -r /etc/iscsi/iscsid.conf ]" in script
    assert "else sudo -n iscsiadm -m node; fi" in script
    plain = host_script(EqlConfig(host="192.0.2.1", iface="eql0"), sudo=False)
    assert "sudo" not in plain and "if [ -r" not in plain


TARGET_SECRET = "target-secret-0042"
MUTUAL_ISCSID = ISCSID + "node.session.auth.username_in = eqltarget\n"
MUTUAL_HASH = (hashlib.sha256(TARGET_SECRET.encode()).hexdigest(), 0)


@pytest.mark.parametrize(
    ("changes", "status", "found", "fix"),
    [
        pytest.param({"iscsid-conf": (MUTUAL_ISCSID, 0), "hash-node-in": MUTUAL_HASH},
                     Status.PASS, "mutual with eqltarget; both secrets match", "", id="good"),
        pytest.param({"hash-node-in": MUTUAL_HASH}, Status.FAIL,
                     "username_in is unset, not eqltarget",
                     "Set node.session.auth.username_in = eqltarget", id="no-username-in"),
        pytest.param({"iscsid-conf": (MUTUAL_ISCSID, 0),
                      "hash-node-in": (hashlib.sha256(b"other").hexdigest(), 0)},
                     Status.FAIL, "password_in differs from the configured target secret",
                     "EQL_CHAP_TARGET_SECRET_FILE", id="wrong-password-in"),
        pytest.param({"iscsid-conf": (MUTUAL_ISCSID, 0)}, Status.FAIL, "password_in differs",
                     "password_in", id="no-password-in"),
    ],
)  # fmt: skip
async def test_chap_with_mutual_chap(
    tmp_path: Path, changes: dict[str, tuple[str, int]], status: Status, found: str, fix: str
) -> None:
    secret = tmp_path / "target"
    secret.write_text(TARGET_SECRET)
    secret.chmod(0o600)
    conf = GOOD_CONF + f"EQL_CHAP_TARGET_USER=eqltarget\nEQL_CHAP_TARGET_SECRET_FILE={secret}\n"
    f = await run(h.check_chap, make_options(tmp_path, conf), "h1",
                  host__h1=parse_host_output(canned(**changes)))  # fmt: skip
    assert f.status is status, f
    assert found in f.found
    assert fix in f.fix if fix else f.fix == ""
    assert TARGET_SECRET not in f.found + f.fix and CHAP_SECRET not in f.found + f.fix


def test_script_hashes_password_in_apart() -> None:
    script = host_script(EqlConfig(host="192.0.2.1"))
    hashes = [line for line in script.splitlines() if "sha256sum |" in line]
    assert len(hashes) == 2
    assert re.escape("node.session.auth.password_in") in hashes[1]
