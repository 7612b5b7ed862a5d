"""Faults during TM actions: each gives one clear sentence, leaves nothing behind, and a
retry once the fault is gone succeeds."""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from eqliscsi.opennebula.migrate_hooks import install_hooks, restore_hooks
from rig.embedded import EmbeddedRig
from rig.oned import DiskSpec, OnedSimulator, VmSpec
from rig.oned.documents import vm_xml

from .helpers import SYS, link_target, make_image, read_block, session_volumes, volumes

pytestmark = [pytest.mark.tgt, pytest.mark.slow]


@contextmanager
def san_fault(rig: EmbeddedRig, **faults: object) -> Iterator[None]:
    path = rig.san_state / "faults.json"
    path.write_text(json.dumps(faults))
    try:
        yield
    finally:
        path.unlink()


def _clone_args(source: str, host: str, vm_id: int) -> list[str]:
    return [f"fe:{source}", f"{host}:{SYS}/{vm_id}/disk.0", str(vm_id), "0"]


def _assert_clean(rig: EmbeddedRig, clone: str, *hosts: str) -> None:
    assert clone not in volumes(rig), f"{clone} was left on the group"
    for host in hosts:
        assert clone not in session_volumes(rig, host)


def _retry_and_remove(rig: EmbeddedRig, sim: OnedSimulator, source: str, vm_id: int) -> None:
    _vm(rig, sim, vm_id, source)  # each simulator answers onevm from its own state
    out = sim.run_tm("clone", _clone_args(source, "h1", vm_id))
    assert out.ok, out.stderr
    disk = f"{SYS}/{vm_id}/disk.0"
    assert link_target(rig, "h1", disk) == f"/dev/iscsi/{source}-{vm_id}-0"
    assert len(read_block(rig, "h1", disk)) == 4096
    out = sim.run_tm("delete", [f"h1:{disk}", str(vm_id), "100"])
    assert out.ok, out.stderr
    _assert_clean(rig, f"{source}-{vm_id}-0", "h1")


@pytest.fixture(scope="module")
def image(rig: EmbeddedRig) -> str:
    return make_image(rig.simulator("7.0"), 60)


def _vm(rig: EmbeddedRig, sim: OnedSimulator, vm_id: int, source: str) -> None:
    rig.put_vm(sim, VmSpec(vm_id, disks=[DiskSpec(0, 60, source, size_mb=32)]))


def test_host_unreachable(rig: EmbeddedRig, image: str) -> None:
    sim = rig.simulator("7.0")
    _vm(rig, sim, 400, image)
    out = sim.run_tm("clone", _clone_args(image, "h9", 400))
    assert not out.ok
    assert out.reason is not None and "Cannot reach host h9" in out.reason
    assert "Traceback" not in out.stderr
    _assert_clean(rig, f"{image}-400-0", "h1", "h2")
    _retry_and_remove(rig, sim, image, 400)


def test_wrong_chap_secret(rig: EmbeddedRig, image: str) -> None:
    wrong = rig.fe / "wrong_chap"
    fd = os.open(wrong, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write("not-the-secret-1\n")
    sim = rig.simulator(
        "6.6", name="wrong-chap", conf=rig.conf_text(EQL_CHAP_SECRET_FILE=str(wrong))
    )
    _vm(rig, sim, 401, image)
    out = sim.run_tm("clone", _clone_args(image, "h1", 401))
    assert not out.ok
    assert out.reason is not None
    assert f"CHAP rejected for volume {image}-401-0" in out.reason
    assert "not-the-secret-1" not in out.stderr
    _assert_clean(rig, f"{image}-401-0", "h1")
    _retry_and_remove(rig, rig.simulator("6.6"), image, 401)


def test_device_never_appears(rig: EmbeddedRig, image: str) -> None:
    # The udev link lands in /dev/iscsi; waiting in another directory never sees it.
    sim = rig.simulator(
        "5.12",
        name="no-device",
        conf=rig.conf_text(EQL_BASE_DEVICE="/dev/eqliscsi-nowhere", EQL_WAIT_TIME="1"),
    )
    _vm(rig, sim, 402, image)
    out = sim.run_tm("clone", _clone_args(image, "h1", 402))
    assert not out.ok
    assert out.reason is not None
    assert "did not appear on host h1 within 1 s" in out.reason
    _assert_clean(rig, f"{image}-402-0", "h1")
    _retry_and_remove(rig, rig.simulator("5.12"), image, 402)


def test_san_error_during_clone(rig: EmbeddedRig, image: str) -> None:
    sim = rig.simulator("7.0")
    _vm(rig, sim, 403, image)
    with san_fault(rig, error_at="volume select multihost-access"):
        out = sim.run_tm("clone", _clone_args(image, "h1", 403))
    assert not out.ok
    assert out.reason is not None and "Injected failure" in out.reason
    assert "\n" not in out.reason.strip()
    _assert_clean(rig, f"{image}-403-0", "h1")
    _retry_and_remove(rig, sim, image, 403)


def test_stale_session_swept_by_delete(rig: EmbeddedRig, image: str) -> None:
    """A destination login left by a failed migration that no failmigrate undid."""
    sim = rig.simulator("7.0")
    vm = VmSpec(404, disks=[DiskSpec(0, 60, image, size_mb=32)])
    rig.put_vm(sim, vm)
    assert sim.run_tm("clone", _clone_args(image, "h1", 404)).ok
    # premigrate to h2 with the link not kept there: as a host without the VM's dir.
    out = sim.run_migrate("premigrate", src="h1", dst="h2", vm_dir=f"{SYS}/404", vm=vm)
    assert out.ok, out.stderr
    rig.ssh("h2", f"rm -f {SYS}/404/disk.0")
    assert session_volumes(rig, "h2") == [f"{image}-404-0"]
    # Another VM's delete on h2 sweeps it; the VM on h1 keeps its session.
    _vm(rig, sim, 405, image)
    assert sim.run_tm("clone", _clone_args(image, "h2", 405)).ok
    out = sim.run_tm("delete", [f"h2:{SYS}/405/disk.0", "405", "100"])
    assert out.ok, out.stderr
    assert session_volumes(rig, "h2") == []
    assert f"closed stale session to {image}-404-0 on h2" in out.stderr
    assert session_volumes(rig, "h1") == [f"{image}-404-0"]
    assert sim.run_tm("delete", [f"h1:{SYS}/404/disk.0", "404", "100"]).ok
    _assert_clean(rig, f"{image}-404-0", "h1", "h2")


def test_premigrate_failure_reaches_log_file_and_syslog(
    rig: EmbeddedRig, image: str, tmp_path: Path
) -> None:
    """migrate_other ignores the exit status: the failure must be visible elsewhere."""
    sock_path = tmp_path / "log.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(sock_path))
    sock.settimeout(10)
    try:
        sim = rig.simulator("7.0", name="syslog")
        sim.extra_env["EQLISCSI_SYSLOG"] = str(sock_path)
        vm = VmSpec(406, disks=[DiskSpec(0, 60, image, size_mb=32)])
        rig.put_vm(sim, vm)
        assert sim.run_tm("clone", _clone_args(image, "h1", 406)).ok
        out = sim.run_migrate("premigrate", src="h1", dst="h9", vm_dir=f"{SYS}/406", vm=vm)
        assert not out.ok and out.reason is not None and "h9" in out.reason
        assert "MIGRATION PROBLEM: VM 406 to h9" in sim.log_file.read_text()
        message = sock.recv(4096).decode()
        assert "eqliscsi tm.premigrate: VM 406 to h9" in message
        assert message.startswith("<27>")  # daemon.err
    finally:
        sock.close()
    assert sim.run_tm("delete", [f"h1:{SYS}/406/disk.0", "406", "100"]).ok
    _assert_clean(rig, f"{image}-406-0", "h1", "h2")


def test_failmigrate_through_installed_system_tm_hook(rig: EmbeddedRig, image: str) -> None:
    """No stock system TM calls failmigrate; the opt-in hook makes shared/failmigrate do."""
    sim = rig.simulator("7.0", name="hooks")
    stock = sim.remotes / "tm" / "shared" / "failmigrate"
    stock.parent.mkdir(parents=True, exist_ok=True)
    stock.write_text("#!/bin/sh\nexit 0\n")  # OpenNebula's tm/common/failmigrate
    stock.chmod(0o755)
    install_hooks(sim.remotes, ["shared"])
    vm = VmSpec(407, disks=[DiskSpec(0, 60, image, size_mb=32)])
    rig.put_vm(sim, vm)
    assert sim.run_tm("clone", _clone_args(image, "h1", 407)).ok
    assert sim.run_migrate("premigrate", src="h1", dst="h2", vm_dir=f"{SYS}/407", vm=vm).ok
    assert session_volumes(rig, "h2") == [f"{image}-407-0"]
    # What the system TM's failmigrate gets from oned 7.0: argv, VM base64 on stdin.
    doc = base64.b64encode(vm_xml("7.0.0", vm).encode()) + b"\n"
    done = subprocess.run(
        [str(stock), "h1", "h2", f"{SYS}/407", "407", "0"],
        input=doc, capture_output=True, env=sim.environment(), timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert session_volumes(rig, "h2") == []
    assert session_volumes(rig, "h1") == [f"{image}-407-0"]
    restore_hooks(sim.remotes)
    assert stock.read_text() == "#!/bin/sh\nexit 0\n"
    assert sim.run_tm("delete", [f"h1:{SYS}/407/disk.0", "407", "100"]).ok
    _assert_clean(rig, f"{image}-407-0", "h1", "h2")


@pytest.mark.parametrize(
    ("sys_tm", "link_left_on_h2"),
    [
        # ssh: h2 has its own VM directory, where premigrate made disk.0 for a VM that
        # stays on h1 after the failure: failmigrate takes it away with the login.
        pytest.param("ssh", False, id="host-local-system-ds"),
        # shared: disk.0 is the same file for both hosts (the rig's hosts keep separate
        # directories, so it shows on h2 as it would there): it must stay.
        pytest.param("shared", True, id="shared-system-ds"),
    ],
)
def test_failmigrate_removes_the_link_only_where_the_directory_is_the_hosts_own(
    rig: EmbeddedRig, image: str, sys_tm: str, link_left_on_h2: bool
) -> None:
    sim = rig.simulator("7.0")
    vm_id = 408 if sys_tm == "ssh" else 409
    vm = VmSpec(vm_id, disks=[DiskSpec(0, 60, image, size_mb=32)])
    rig.put_vm(sim, vm)
    clone, disk = f"{image}-{vm_id}-0", f"{SYS}/{vm_id}/disk.0"
    assert sim.run_tm("clone", _clone_args(image, "h1", vm_id)).ok
    vm_dir = f"{SYS}/{vm_id}"
    out = sim.run_migrate("premigrate", src="h1", dst="h2", vm_dir=vm_dir, vm=vm, sys_tm=sys_tm)
    assert out.ok, out.stderr
    assert link_target(rig, "h2", disk) == f"/dev/iscsi/{clone}"
    out = sim.run_migrate("failmigrate", src="h1", dst="h2", vm_dir=vm_dir, vm=vm, sys_tm=sys_tm)
    assert out.ok, out.stderr
    assert clone not in session_volumes(rig, "h2")
    assert link_target(rig, "h2", disk) == (f"/dev/iscsi/{clone}" if link_left_on_h2 else "")
    # The source keeps running the VM: its login and link are untouched.
    assert clone in session_volumes(rig, "h1")
    assert link_target(rig, "h1", disk) == f"/dev/iscsi/{clone}"
    assert len(read_block(rig, "h1", disk)) == 4096
    assert sim.run_tm("delete", [f"h1:{disk}", str(vm_id), "100"]).ok
    _assert_clean(rig, clone, "h1", "h2")
