"""The README's demo (``python -m rig.demo``): a VM disk's life on the embedded rig.

1. The native iSCSI client against a real tgtd (:mod:`rig.demo_iscsi`).
2. The embedded rig comes up (:mod:`rig.embedded`): a fake EqualLogic group over SSH
   with tgtd serving its volumes, two namespaced hypervisor hosts with sshd, a
   front-end directory with the remotes (OpenNebula 7.0 conventions, rig.oned).
3. The preflight (SAN and iSCSI sections), after the first image is registered.
4. Through the remotes, as oned runs them: register a qcow2 image (DS cp, pool
   before/after), deploy it non-persistent on h1 (TM clone, grown to DISK/SIZE),
   write a marker through h1's block device, live-migrate to h2 (pre/postmigrate)
   and read it there, a failed migration back (failmigrate), save the disk as a new
   image (cpds), use that as a persistent image on another VM (ln) and stop/resume
   it onto h2 (mv through the front-end), shut it down (mvds), terminate the first VM
   (delete).  Every byte check reads the hosts' block devices; every session check
   asks the hosts' own ``iscsiadm -m session``.

It prints progress while it works, then each step with its time and what was
verified, exits non-zero if anything did not hold, and always takes the rig down.
"""

from __future__ import annotations

import importlib.util
import json
import os
import secrets
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from eqliscsi.errors import EqliscsiError
from eqliscsi.opennebula.devname import volume_from_iqn
from rig import demo_iscsi
from rig.embedded import EmbeddedRig
from rig.oned import DatastoreSpec, DiskSpec, ImageSpec, OnedSimulator, VmSpec

__all__ = ["main"]

PROFILE = "7.0"
SYS = "/var/lib/one//datastores/0"
DS = DatastoreSpec(template={"DS_MAD": "eqliscsi", "TM_MAD": "eqliscsi", "EQL_POOL": "default"})


@dataclass
class Step:
    name: str
    ok: bool
    detail: str
    seconds: float


class Check(AssertionError):
    """Something the demo verifies did not hold."""


def expect(cond: bool, what: str) -> None:
    if not cond:
        raise Check(what)


class Demo:
    def __init__(self, rig: EmbeddedRig, sim: OnedSimulator, work: Path) -> None:
        self.rig = rig
        self.sim = sim
        self.work = work
        self.steps: list[Step] = []

    # -------------------------------------------------------------- plumbing
    def step(self, name: str, action: Callable[[], str]) -> bool:
        print(f"  ... {name}", flush=True)
        started = time.perf_counter()
        try:
            detail, ok = action(), True
        except (Check, EqliscsiError, subprocess.SubprocessError, OSError) as exc:
            detail, ok = f"{type(exc).__name__}: {exc}", False
        self.steps.append(Step(name, ok, detail, time.perf_counter() - started))
        return ok

    def tm(self, action: str, *args: str) -> str:
        out = self.sim.run_tm(action, list(args))
        expect(out.ok, f"tm {action} failed: {out.reason}")
        return out.stderr

    def migrate(self, action: str, src: str, dst: str, vm: VmSpec) -> None:
        out = self.sim.run_migrate(action, src=src, dst=dst, vm_dir=f"{SYS}/{vm.id}", vm=vm)
        expect(out.ok, f"tm {action} failed: {out.reason}")

    def sessions(self, host: str) -> list[str]:
        r = self.rig.ssh(host, "iscsiadm -m session")
        if r.returncode == 21:
            return []
        expect(r.returncode == 0, f"iscsiadm -m session on {host}: {r.stderr.decode()}")
        iqns = [ln.split()[3] for ln in r.stdout.decode().splitlines() if ln.strip()]
        return sorted(str(volume_from_iqn(i)) for i in iqns)

    def volumes(self) -> dict[str, dict[str, object]]:
        data = json.loads((self.rig.san_state / "san.json").read_text())
        return {v["name"]: v for v in data["volumes"]}

    def write(self, host: str, path: str, block: int) -> bytes:
        marker = f"eqliscsi-demo-{secrets.token_hex(6)}".encode()
        r = self.rig.ssh(
            host,
            f"dd of={shlex.quote(path)} bs=4096 seek={block} count=1 "
            "conv=sync,fsync,notrunc oflag=direct status=none",
            stdin=marker,
        )
        expect(r.returncode == 0, f"writing on {host}: {r.stderr.decode()}")
        return marker

    def read(self, host: str, path: str, block: int, n: int) -> bytes:
        r = self.rig.ssh(
            host, f"dd if={shlex.quote(path)} bs=4096 skip={block} count=1 iflag=direct status=none"
        )
        expect(r.returncode == 0, f"reading on {host}: {r.stderr.decode()}")
        return r.stdout[:n]

    def pool(self) -> dict[str, str]:
        out = self.sim.run_ds("monitor", self.sim.ds_document(None, DS), 100)
        expect(out.ok, f"ds monitor failed: {out.reason}")
        return dict(out.monitor)

    # -------------------------------------------------------------- the story
    def run(self) -> None:
        image_marker = f"eqliscsi-image-{secrets.token_hex(6)}".encode()
        state: dict[str, object] = {}

        def register() -> str:
            raw = self.work / "ttylinux.raw"
            with open(raw, "wb") as fh:
                fh.write(image_marker)
                fh.truncate(64 << 20)
            qcow = self.work / "ttylinux.qcow2"
            subprocess.run(
                ["qemu-img", "convert", "-q", "-f", "raw", "-O", "qcow2", str(raw), str(qcow)],
                check=True,
                timeout=120,
            )
            before, vols_before = self.pool(), len(self.volumes())
            img = ImageSpec(id=7, name="ttylinux", path=str(qcow), size_mb=64)
            out = self.sim.run_ds("cp", self.sim.ds_document(img, DS), 7)
            expect(out.ok, f"ds cp failed: {out.reason}")
            after = self.pool()
            state["image"] = out.info
            expect(out.info in self.volumes(), f"{out.info} is not on the group")
            # The group shows pool space to 0.01 of its unit (10.00TB), so a 64 MB
            # volume may not move USED_MB; the volume count shows the change.
            return (
                f"qcow2 written as raw to {out.info} ({out.format}); volumes on the group "
                f"{vols_before} -> {len(self.volumes())}; pool used {before['USED_MB']} -> "
                f"{after['USED_MB']} MB, free {before['FREE_MB']} -> {after['FREE_MB']} MB "
                "(DS monitor)"
            )

        if not self.step("register image (DS cp)", register):
            return
        if importlib.util.find_spec("eqliscsi.cli.preflight") is not None:
            # After the first volume: tgt (the rig's data plane) drops a discovery login
            # while it serves no target at all, which a real group never does.
            def preflight() -> str:
                ok, detail = _preflight(self.rig, self.sim)
                expect(ok, detail)
                return detail

            self.step("preflight (SAN and iSCSI sections)", preflight)
        image = str(state["image"])
        vm1 = VmSpec(101, "web", disks=[DiskSpec(0, 7, image, size_mb=128)])
        self.rig.put_vm(self.sim, vm1)
        disk1 = f"{SYS}/101/disk.0"
        clone = f"{image}-101-0"

        def deploy() -> str:
            self.tm("clone", f"fe:{image}", f"h1:{disk1}", "101", "0")
            vol = self.volumes().get(clone)
            expect(vol is not None, f"{clone} was not created")
            assert vol is not None
            expect(int(str(vol["size_mb"])) >= 128, f"{clone} has {vol['size_mb']} MB")
            got = self.read("h1", disk1, 0, len(image_marker))
            expect(got == image_marker, "h1 does not read the image's bytes through disk.0")
            state["vm_marker"] = self.write("h1", disk1, 1)
            expect(self.sessions("h1") == [clone], f"h1 sessions {self.sessions('h1')}")
            return (
                f"{clone} cloned on the array, grown to {vol['size_mb']} MB; h1 reads the "
                "image bytes through disk.0 and wrote a VM marker"
            )

        if not self.step("deploy non-persistent on h1 (TM clone)", deploy):
            return
        marker = state["vm_marker"]
        assert isinstance(marker, bytes)

        def live_migrate() -> str:
            self.migrate("premigrate", "h1", "h2", vm1)
            expect(self.sessions("h2") == [clone], "h2 is not logged in after premigrate")
            got = self.read("h2", f"/dev/iscsi/{clone}", 1, len(marker))
            expect(got == marker, "h2 does not read the marker h1 wrote")
            self.migrate("postmigrate", "h1", "h2", vm1)
            expect(self.sessions("h1") == [], "h1 still logged in after postmigrate")
            return "h2 logged in and read h1's marker; h1 logged out"

        self.step("live-migrate h1 -> h2 (pre/postmigrate)", live_migrate)

        def failed_migration() -> str:
            self.migrate("premigrate", "h2", "h1", vm1)
            expect(self.sessions("h1") == [clone], "h1 not logged in after premigrate")
            self.migrate("failmigrate", "h2", "h1", vm1)
            expect(self.sessions("h1") == [], "h1 still logged in after failmigrate")
            expect(self.sessions("h2") == [clone], "h2 lost its session")
            return "failmigrate logged h1 out again; the VM keeps its disk on h2"

        self.step("failed migration h2 -> h1 (failmigrate)", failed_migration)
        saved = "saved-web.8"

        def save_as() -> str:
            self.tm("cpds", f"h2:{disk1}", saved, "-1", "101", "100")
            expect(saved in self.volumes(), f"{saved} is not on the group")
            return f"{clone} copied on the array to {saved} while the VM runs"

        if self.step("save disk as a new image (cpds)", save_as):
            vm2 = VmSpec(102, "db", disks=[DiskSpec(0, 8, saved, persistent=True)])
            self.rig.put_vm(self.sim, vm2)
            disk2 = f"{SYS}/102/disk.0"

            def persistent() -> str:
                self.tm("ln", f"fe:{saved}", f"h1:{disk2}", "102", "0")
                got = self.read("h1", disk2, 1, len(marker))
                expect(got == marker, "the saved image lacks the VM's marker")
                return f"{saved} linked on h1 (no copy); it holds the marker written on h1"

            def stop_resume() -> str:
                self.tm("mv", f"h1:{disk2}", f"fe:{disk2}", "102", "0")
                expect(saved not in self.sessions("h1"), "h1 still logged in after stop")
                self.tm("mv", f"fe:{disk2}", f"h2:{disk2}", "102", "0")
                got = self.read("h2", disk2, 1, len(marker))
                expect(got == marker, "h2 does not read the persistent disk after resume")
                return "stopped (h1 -> front-end, logged out), resumed on h2, bytes intact"

            def shutdown() -> str:
                self.tm("mvds", f"h2:{disk2}", saved, "102", "100")
                expect(saved not in self.sessions("h2"), "h2 still logged in after mvds")
                expect(saved in self.volumes(), "the persistent image's volume is gone")
                return "logged out, the persistent image's volume kept"

            if self.step("persistent image on h1 (TM ln)", persistent):
                self.step("stop / resume onto h2 (TM mv via the front-end)", stop_resume)
                self.step("shut down the persistent VM (TM mvds)", shutdown)

        def terminate() -> str:
            self.tm("delete", f"h2:{disk1}", "101", "100")
            expect(clone not in self.volumes(), f"{clone} still exists")
            left = self.sessions("h1") + self.sessions("h2")
            expect(left == [], f"sessions left: {left}")
            kept = sorted(v for v in self.volumes() if v in (image, saved))
            return f"{clone} logged out and deleted; no sessions left; images kept: {kept}"

        self.step("terminate the first VM (TM delete)", terminate)


def _preflight(rig: EmbeddedRig, sim: OnedSimulator) -> tuple[bool, str]:
    env = {**os.environ, **rig.environment(), "EQLISCSI_CONF": str(rig.fe / "eqliscsi.conf")}
    # The SAN and iSCSI sections: the rig has no oned.conf for the front-end section,
    # and its hosts are set up by the rig, not by an admin following docs/tm.md.
    r = subprocess.run(
        [sys.executable, "-m", "eqliscsi", "preflight", "--json", "--skip", "front-end,hosts"],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        check=False,
        cwd=sim.root,
    )
    try:
        report = json.loads(r.stdout)
        results = [x for x in report["results"] if x["status"] != "skip"]
    except (ValueError, KeyError, TypeError):
        tail = (r.stdout + r.stderr).strip().splitlines()
        return False, (tail[-1] if tail else f"exit {r.returncode}")[:300]
    bad = [f"{x['id']} {x['status']}: {x['found']}" for x in results if x["status"] != "pass"]
    # Exit 1 is "warnings only" (docs/preflight.md): nothing that stops the driver.
    ok = r.returncode in (0, 1) and not any(x["status"] == "fail" for x in results)
    passed = sum(x["status"] == "pass" for x in results)
    detail = f"SAN and iSCSI sections: {passed}/{len(results)} checks passed"
    return ok, (detail + ("; " + "; ".join(bad) if bad else ""))[:400]


def main() -> int:
    print("eqliscsi demo: the OpenNebula driver on the embedded rig", flush=True)
    steps: list[Step] = []
    print("  ... native iSCSI client against tgtd", flush=True)
    t0 = time.perf_counter()
    iscsi = demo_iscsi.run_checks()
    bad = [s for s in iscsi if not s.ok]
    steps.append(
        Step(
            "native iSCSI client (discover, CHAP, mutual CHAP)",
            not bad,
            f"{len(iscsi) - len(bad)}/{len(iscsi)} checks passed"
            + (f"; {bad[0].name}: {bad[0].detail}" if bad else ""),
            time.perf_counter() - t0,
        )
    )
    with tempfile.TemporaryDirectory(prefix="eqliscsi-demo-rig-") as tmp:
        work = Path(tmp)
        rig = EmbeddedRig(work / "rig")
        print("  ... starting the embedded rig", flush=True)
        t0 = time.perf_counter()
        try:
            rig.up()
        except (EqliscsiError, OSError, subprocess.SubprocessError) as exc:
            steps.append(Step("start the embedded rig", False, str(exc), time.perf_counter() - t0))
            rig.down()
            return _report(steps, down_ok=True)
        try:
            sim = rig.simulator(PROFILE, name="demo")
            steps.append(
                Step(
                    "start the embedded rig",
                    True,
                    f"group CLI 127.0.0.1:{rig.san_ssh[1]}, iSCSI {rig.portal[0]}:{rig.portal[1]}"
                    f", hosts h1 h2, OpenNebula {sim.profile.version} conventions",
                    time.perf_counter() - t0,
                )
            )
            demo = Demo(rig, sim, work)
            demo.run()
            steps += demo.steps
        finally:
            print("  ... taking the rig down", flush=True)
            t0 = time.perf_counter()
            down_ok = True
            try:
                rig.down()
            except (EqliscsiError, OSError, subprocess.SubprocessError) as exc:
                down_ok = False
                steps.append(Step("take the rig down", False, str(exc), time.perf_counter() - t0))
    return _report(steps, down_ok=down_ok)


def _report(steps: list[Step], *, down_ok: bool) -> int:
    width = max(len(s.name) for s in steps)
    print()
    for s in steps:
        mark = "ok  " if s.ok else "FAIL"
        print(f"  [{mark}] {s.name:<{width}}  {s.seconds:7.2f} s  {s.detail}")
    failed = [s for s in steps if not s.ok]
    tail = "rig down, files removed" if down_ok else "rig cleanup FAILED"
    print(f"{len(steps) - len(failed)}/{len(steps)} steps passed; {tail}.")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
