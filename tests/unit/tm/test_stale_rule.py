"""The stale-session rule's inputs: oned's placement of a VM and the host inventory."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from eqliscsi.opennebula import iscsiadm as ia
from eqliscsi.opennebula.actions.tm import _vm_id_of
from eqliscsi.opennebula.driver_action import parse_vm
from eqliscsi.opennebula.tm_host import (
    SWEEP_KEPT,
    detach_script,
    inventory_script,
    parse_inventory,
)
from rig.oned.documents import VmSpec, vm_xml

PREFIX = "iqn.2001-05.com.equallogic:0-8a0906-0123456789-0123456789abcdef-"
NODE = ia.Node(PREFIX + "img.7-42-0", ia.TargetPortal("10.0.0.5", 3260))


@pytest.mark.parametrize(
    ("history", "state", "lcm", "hosts"),
    [
        ((), 3, 3, None),  # no records: unknown, the caller keeps the session
        (("h1",), 3, 3, {"h1"}),
        (("h1", "h2"), 3, 3, {"h2"}),  # migrated
        (("h1", "h2", "h1"), 3, 3, {"h1"}),  # failed live migration: record copied back
        (("h1", "h2"), 3, 4, {"h1", "h2"}),  # MIGRATE in flight: both hosts
        (("h1", "h2"), 8, 0, {"h1", "h2"}),  # POWEROFF: keep the last two, conservative
        (("h1",), 6, 0, set()),  # DONE: on no host
    ],
    ids=["no-history", "running", "migrated", "failed-migration", "migrating", "poweroff", "done"],
)
def test_hosts_in_use(
    history: tuple[str, ...], state: int, lcm: int, hosts: set[str] | None
) -> None:
    spec = VmSpec(5, history=history, state=state, lcm_state=lcm)
    for version in ("4.4.1", "5.8.0", "6.6.0", "7.0.0"):
        vm = parse_vm(vm_xml(version, spec).encode())
        assert vm.history_hosts == history
        got = vm.hosts_in_use()
        assert (None if got is None else set(got)) == hosts


def test_inventory_reports_links_devices_and_open_nodes() -> None:
    stdout = (
        f"tcp: [1] 10.0.0.5:3260,1 {PREFIX}img.7-42-0 (non-flash)\n"
        f"tcp: [2] 10.0.0.5:3260,1 {PREFIX}img.7-43-0 (non-flash)\n"
        "eqliscsi-tm: sessions-status 0\n"
        "eqliscsi-tm: links\n"
        "/var/lib/one/datastores/0/42/disk.0 /dev/iscsi/img.7-42-0\n"
        "/var/lib/one/datastores/0/43/disk.0 /dev/iscsi/img.7-43-0\n"
        "eqliscsi-tm: devices\n"
        "/dev/iscsi/img.7-42-0 /dev/sdb\n"
        "/dev/iscsi/img.7-43-0 /dev/sdc\n"
        "eqliscsi-tm: open-devices\n"
        "/dev/null\n/dev/sdb\n"
    )
    inv = parse_inventory(stdout)
    assert inv.linked_from("/dev/iscsi/img.7-43-0") == ("/var/lib/one/datastores/0/43/disk.0",)
    assert inv.is_open("/dev/iscsi/img.7-42-0") and not inv.is_open("/dev/iscsi/img.7-43-0")
    assert inv.stale("/dev/iscsi", re.compile(".*")) == []


def _run(script: bytes) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["sh", "-s"], input=script, capture_output=True, timeout=30, check=False)


def test_inventory_script_runs_under_sh() -> None:
    # The real script, with iscsiadm replaced by a canned session line.
    script = inventory_script("/nonexistent/datastores", "/nonexistent/dev").replace(
        b"sudo -n iscsiadm -m session",
        f"echo 'tcp: [1] 10.0.0.5:3260,1 {PREFIX}img.7-42-0 (non-flash)'".encode(),
    )
    r = _run(script)
    assert r.returncode == 0, r.stderr
    inv = parse_inventory(r.stdout.decode())
    assert [s.iqn for s in inv.sessions] == [PREFIX + "img.7-42-0"]
    assert inv.links == () and inv.devices == {} and inv.open_nodes is not None


def test_sweep_guard_keeps_a_session_linked_from_an_unjudged_vm(tmp_path: Path) -> None:
    base = tmp_path / "datastores"
    for vm in ("42", "43"):
        (base / "0" / vm).mkdir(parents=True)
        (base / "0" / vm / "disk.0").symlink_to("/dev/iscsi/img.7-42-0")
    judged = [str(base / "0" / "42" / "disk.0")]
    script, text = detach_script(
        NODE, volume="img.7-42-0", base_device="/dev/iscsi", link=None,
        unless_linked_under=str(base), judged_links=judged,
    )  # fmt: skip
    assert text.index("flock -w") < text.index("-lname") < text.index("--logout")
    lock = tmp_path / "lock"
    script = script.replace(b"/var/lock/eqliscsi-iscsi.lock", str(lock).encode())
    r = _run(script)  # VM 43 was not judged: its link keeps the session, no logout ran
    assert r.returncode == 0 and SWEEP_KEPT.encode() in r.stdout, r.stderr
    (base / "0" / "43" / "disk.0").unlink()
    r = _run(script.replace(b"sudo -n iscsiadm", b"echo iscsiadm"))
    assert SWEEP_KEPT.encode() not in r.stdout
    assert b"--logout" in r.stdout


@pytest.mark.parametrize(
    ("link", "vm_id"),
    [
        ("/var/lib/one/datastores/0/470/disk.0", 470),
        ("/var/lib/one/datastores/104/7/disk.12", 7),
        ("disk.0", None),
        ("/var/lib/one/datastores/0/x/disk.0", None),
    ],
)
def test_vm_id_of_a_link(link: str, vm_id: int | None) -> None:
    assert _vm_id_of(link) == vm_id
