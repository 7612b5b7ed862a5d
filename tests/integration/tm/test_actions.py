"""TM action logic against a fake group on 127.0.0.1, with the host side recorded.

The remotes' code runs in-process through the runner (as oned's argv would reach it);
the group is rig.fake_eql's CLI over SSH; host scripts go to a recorder instead of
ssh, so these tests judge which hosts an action touches, and what it leaves on the
group, in a few seconds.  The real host path is judged by tests/e2e/tm.
"""

from __future__ import annotations

import asyncio
import base64
import io
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from eqliscsi.opennebula import runner
from eqliscsi.opennebula.actions import tm
from eqliscsi.opennebula.tm_host import HostResult, HostRunner, HostUnreachableError
from eqliscsi.secret import Secret
from rig.fake_eql.server import FakeEql
from rig.oned.documents import DatastoreSpec, DiskSpec, VmSpec, datastore_xml, vm_xml

PASSWORD = b"tm-actions-password-1"
SYS = "/var/lib/one/datastores/0"


@dataclass
class Hosts(HostRunner):
    calls: list[tuple[str, str]] = field(default_factory=list)
    down: set[str] = field(default_factory=set)

    def run(self, host: str, script: bytes, *, timeout: float) -> HostResult:
        text = script.decode()
        kind = (
            "inventory" if "sessions-status" in text
            else "attach" if "--login" in text
            else "detach" if "--logout" in text
            else "other"
        )  # fmt: skip
        self.calls.append((host, kind))
        if host in self.down:
            raise HostUnreachableError(f"Cannot reach host {host} over ssh (test).")
        if kind == "inventory":
            return HostResult(0, "eqliscsi-tm: sessions-status 21\neqliscsi-tm: links\n", "")
        return HostResult(0, "", "")


@dataclass
class Front:
    fake: FakeEql
    env: dict[str, str]
    root: Path
    hosts: Hosts

    def vm(self, vm: VmSpec) -> None:
        (self.root / "vm" / f"{vm.id}.xml").write_text(vm_xml("7.0.0", vm))

    async def run(self, action: str, *args: str, stdin: bytes = b"") -> tuple[int, str]:
        err = io.StringIO()
        rc = await asyncio.to_thread(
            runner.run_action,
            f"tm.{action}",
            list(args),
            argv0=str(self.root / "remotes" / "tm" / "eqliscsi" / action),
            stdin=io.BytesIO(stdin),
            stdout=io.StringIO(),
            stderr=err,
            environ=self.env,
        )
        return rc, err.getvalue()


@pytest.fixture
async def front(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Front]:
    fake = FakeEql(tmp_path / "fake", group_name="g", account="grpadmin", password=Secret(PASSWORD))
    host, port = await fake.start("127.0.0.1", 0)
    (tmp_path / "remotes" / "tm" / "eqliscsi").mkdir(parents=True)
    (tmp_path / "remotes" / "VERSION").write_text("7.0.0\n")
    pw = tmp_path / "pw"
    pw.write_bytes(PASSWORD)
    pw.chmod(0o600)
    known = tmp_path / "known_hosts"
    known.write_text(f"[{host}]:{port} {fake.host_key().export_public_key().decode().strip()}\n")
    conf = tmp_path / "eqliscsi.conf"
    conf.write_text(
        f"EQL_HOST={host}\nEQL_SSH_PORT={port}\nEQL_USER=grpadmin\nEQL_PASS_FILE={pw}\n"
        f"EQL_KNOWN_HOSTS={known}\nEQL_PORTAL=127.0.0.1:3260\nNO_ISCSI='fe fe2'\n"
        "EQL_SECURITY_ACCESS='ipaddress 10.0.0.*'\n"
    )
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, kind in (("onevm", "vm"), ("onedatastore", "ds")):
        (bin_dir / name).write_text(f'#!/bin/sh\nexec cat {tmp_path}/{kind}/"$3".xml\n')
        (bin_dir / name).chmod(0o755)
        (tmp_path / kind).mkdir()
    for ds in (0, 100):
        (tmp_path / "ds" / f"{ds}.xml").write_text(datastore_xml("7.0.0", DatastoreSpec(id=ds)))
    hosts = Hosts()
    monkeypatch.setattr(tm, "host_runner_factory", lambda ctx: hosts)
    monkeypatch.setattr(tm, "check_target", lambda env, iqn, volume: None)
    for key, target in tm.TM_ACTIONS.items():
        monkeypatch.setitem(runner.ACTIONS, key, target)
    env = {
        "PATH": f"{bin_dir}:/usr/bin:/bin",
        "EQLISCSI_CONF": str(conf),
        "EQLISCSI_LOCK_DIR": str(tmp_path / "locks"),
        "EQLISCSI_LOG_FILE": str(tmp_path / "eqliscsi.log"),
        "EQLISCSI_REMOTES_DIR": str(tmp_path / "remotes"),
    }
    fake.san.create_volume("img.5", 100, description="eqliscsi ds=100")
    fake.commit()
    try:
        yield Front(fake, env, tmp_path, hosts)
    finally:
        await fake.close()


def _disk(vm: int, n: int = 0) -> str:
    return f"{SYS}/{vm}/disk.{n}"


async def test_stop_and_resume_skip_no_iscsi_hosts(front: Front) -> None:
    front.vm(VmSpec(7, disks=[DiskSpec(0, 5, "img.5", persistent=True)]))
    assert (await front.run("mv", f"h1:{_disk(7)}", f"fe:{_disk(7)}", "7", "0"))[0] == 0
    assert front.hosts.calls == [("h1", "detach")]
    front.hosts.calls.clear()
    assert (await front.run("mv", f"fe:{_disk(7)}", f"fe2:{_disk(7)}", "7", "0"))[0] == 0
    assert front.hosts.calls == []
    assert (await front.run("mv", f"fe:{_disk(7)}", f"h2:{_disk(7)}", "7", "0"))[0] == 0
    assert front.hosts.calls == [("h2", "attach")]


async def test_delete_of_a_vanished_clone_succeeds_without_hosts(front: Front) -> None:
    front.vm(VmSpec(8, disks=[DiskSpec(0, 5, "img.5")]))
    rc, err = await front.run("delete", f"h1:{_disk(8)}", "8", "100")
    assert rc == 0, err
    assert "img.5-8-0 was already gone" in err
    assert front.hosts.calls == []
    assert "img.5" in front.fake.san.volumes


async def test_persistent_delete_keeps_the_image(front: Front) -> None:
    front.vm(VmSpec(9, disks=[DiskSpec(0, 5, "img.5", persistent=True)]))
    rc, err = await front.run("delete", f"h1:{_disk(9)}", "9", "100")
    assert rc == 0, err
    assert front.hosts.calls == [("h1", "detach"), ("h1", "inventory")]
    assert "img.5" in front.fake.san.volumes


async def test_clone_to_a_dead_host_leaves_no_volume(front: Front) -> None:
    front.vm(VmSpec(10, disks=[DiskSpec(0, 5, "img.5", size_mb=200)]))
    front.hosts.down.add("h3")
    rc, err = await front.run("clone", "fe:img.5", f"h3:{_disk(10)}", "10", "0")
    assert rc != 0 and "Cannot reach host h3" in err
    assert "img.5-10-0" not in front.fake.san.volumes
    front.hosts.down.clear()
    rc, err = await front.run("clone", "fe:img.5", f"h3:{_disk(10)}", "10", "0")
    assert rc == 0, err
    vol = front.fake.san.volumes["img.5-10-0"]
    assert vol.size_mb >= 200 and vol.description == "eqliscsi ds=100"


async def test_migration_ignores_vms_without_our_disks(front: Front) -> None:
    vm = VmSpec(11, disks=[DiskSpec(0, 3, "one/one-3", tm_mad="ceph")])
    doc = base64.b64encode(vm_xml("7.0.0", vm).encode()) + b"\n"
    for action in ("premigrate", "postmigrate", "failmigrate"):
        rc, err = await front.run(action, "h1", "h2", f"{SYS}/11", "11", "0", "shared", stdin=doc)
        assert rc == 0, err
    # Only the stale-session sweeps touch hosts (premigrate's of the destination, then
    # post/failmigrate's); no login, no logout.
    assert front.hosts.calls == [("h2", "inventory"), ("h1", "inventory"), ("h2", "inventory")]


async def test_the_same_host_migration_does_nothing(front: Front) -> None:
    vm = VmSpec(12, disks=[DiskSpec(0, 5, "img.5", persistent=True)])
    doc = base64.b64encode(vm_xml("7.0.0", vm).encode()) + b"\n"
    rc, err = await front.run("premigrate", "h1", "h1", f"{SYS}/12", "12", "0", "shared", stdin=doc)
    assert rc == 0, err
    assert front.hosts.calls == []
