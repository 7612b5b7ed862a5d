"""TM driver benchmark.

1. ``--rig``: wall time per action of the real remotes on the embedded rig (fake
   group + tgtd + two namespaced hosts; OpenNebula 7.0 conventions): clone (array
   clone + CHAP check + host login + link), delete, ln, mvds.
2. Array-bound scheduling: N concurrent ``tm.clone`` actions (default 64) against a
   fake group that answers every CLI command after ``--latency`` (default 100 ms),
   with ``EQL_MAX_SESSIONS`` = ``--cap`` (default 4).  The actions run in-process
   (threads through :func:`eqliscsi.opennebula.runner.run_action`) with the host
   side and the front-end iSCSI check replaced by no-ops, so what is measured is the
   array part of a clone and how well the session slots are kept busy.  The
   array-bound minimum is ceil(N / cap) * the time one clone holds a CLI session
   alone; the goal is a makespan of at most 1.15 * that.  The fake group enforces
   the cap itself (it refuses a session beyond ``--cap``, as a real group does
   beyond its limit), so a slot released before the group has closed the session
   shows up as refusals and retries.

Nothing but 127.0.0.1 (and the rig's private bridge with ``--rig``) is contacted.
Usage::

    .venv/bin/python bench/tm_bench.py [--clones 64] [--cap 4] [--latency 0.1] [--rig]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import math
import os
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from eqliscsi.opennebula import runner  # noqa: E402
from eqliscsi.opennebula.actions import tm  # noqa: E402
from eqliscsi.opennebula.tm_host import HostResult, HostRunner  # noqa: E402
from eqliscsi.secret import Secret  # noqa: E402
from rig.fake_eql.faults import Faults  # noqa: E402
from rig.fake_eql.server import FakeEql  # noqa: E402
from rig.oned.documents import DatastoreSpec, DiskSpec, VmSpec, datastore_xml, vm_xml  # noqa: E402

PASSWORD = b"bench-password-123"
SYS = "/var/lib/one/datastores/0"


class NullHosts(HostRunner):
    """Every host script succeeds at once: the bench measures the array side."""

    def run(self, host: str, script: bytes, *, timeout: float) -> HostResult:
        return HostResult(0, "", "")


def _frontend(tmp: Path, host: str, port: int, cap: int, known: str) -> dict[str, str]:
    remotes = tmp / "remotes"
    (remotes / "tm" / "eqliscsi").mkdir(parents=True)
    (remotes / "VERSION").write_text("7.0.0\n")
    pw = tmp / "password"
    pw.write_bytes(PASSWORD + b"\n")
    pw.chmod(0o600)
    (tmp / "known_hosts").write_text(known)
    conf = tmp / "eqliscsi.conf"
    conf.write_text(
        f"EQL_HOST={host}\nEQL_SSH_PORT={port}\nEQL_USER=grpadmin\nEQL_PASS_FILE={pw}\n"
        f"EQL_KNOWN_HOSTS={tmp / 'known_hosts'}\nEQL_MAX_SESSIONS={cap}\n"
        "EQL_PORTAL=127.0.0.1:3260\nEQL_SECURITY_ACCESS='ipaddress 10.0.0.*'\n"
    )
    bin_dir = tmp / "bin"
    bin_dir.mkdir()
    # `onevm show -x ID` / `onedatastore show -x ID` stand-ins.
    for name, kind in (("onevm", "vms"), ("onedatastore", "ds")):
        tool = bin_dir / name
        tool.write_text(f'#!/bin/sh\nexec cat {tmp}/{kind}/"$3".xml\n')
        tool.chmod(0o755)
        (tmp / kind).mkdir()
    (tmp / "ds" / "0.xml").write_text(datastore_xml("7.0.0", DatastoreSpec(id=0)))
    (tmp / "ds" / "100.xml").write_text(datastore_xml("7.0.0", DatastoreSpec(id=100)))
    return {
        "PATH": f"{bin_dir}:/usr/bin:/bin",
        "EQLISCSI_CONF": str(conf),
        "EQLISCSI_REMOTES_DIR": str(remotes),
        "EQLISCSI_LOCK_DIR": str(tmp / "locks"),
        "EQLISCSI_LOG_FILE": str(tmp / "eqliscsi.log"),
    }


def _clone(env: dict[str, str], tmp: Path, vm: int) -> float:
    (tmp / "vms" / f"{vm}.xml").write_text(
        vm_xml("7.0.0", VmSpec(vm, disks=[DiskSpec(0, 5, "base.5", size_mb=1024)]))
    )
    err = io.StringIO()
    started = time.monotonic()
    rc = runner.run_action(
        "tm.clone",
        ["fe:base.5", f"h1:{SYS}/{vm}/disk.0", str(vm), "0"],
        argv0=str(tmp / "remotes" / "tm" / "eqliscsi" / "clone"),
        stdin=io.BytesIO(),
        stdout=io.StringIO(),
        stderr=err,
        environ=env,
    )
    if rc != 0:
        raise RuntimeError(f"clone of VM {vm} failed: {err.getvalue().strip()[-300:]}")
    return time.monotonic() - started


async def array_bound(clones: int, cap: int, latency: float) -> dict[str, float]:
    tm.check_target = lambda env, iqn, volume: None  # no data plane in this bench
    tm.host_runner_factory = lambda ctx: NullHosts()
    for key, target in tm.TM_ACTIONS.items():
        runner.ACTIONS.setdefault(key, target)
    with tempfile.TemporaryDirectory(prefix="eqliscsi-tm-bench-") as t:
        tmp = Path(t)
        fake = FakeEql(
            tmp / "fake", group_name="bench", account="grpadmin", password=Secret(PASSWORD)
        )
        host, port = await fake.start("127.0.0.1", 0)
        try:
            fake.san.create_volume("base.5", 1024)
            fake.commit()
            known = f"[{host}]:{port} {fake.host_key().export_public_key().decode().strip()}\n"
            env = _frontend(tmp, host, port, cap, known)
            fake.set_faults(Faults(latency=latency, max_sessions=cap))
            loop = asyncio.get_running_loop()
            with ThreadPoolExecutor(clones) as pool:
                singles = [
                    await loop.run_in_executor(pool, _clone, env, tmp, 1 + i) for i in range(3)
                ]
                single = statistics.median(singles)
                started = time.monotonic()
                await asyncio.gather(
                    *(loop.run_in_executor(pool, _clone, env, tmp, 100 + i) for i in range(clones))
                )
                makespan = time.monotonic() - started
            peak = float(fake.max_sessions_seen)
            refused = float(fake.sessions_refused)
        finally:
            await fake.close()
    minimum = math.ceil(clones / cap) * single
    return {
        "single": single,
        "makespan": makespan,
        "minimum": minimum,
        "ratio": makespan / minimum,
        "peak_sessions": peak,
        "refused": refused,
    }


def rig_actions(runs: int) -> dict[str, list[float]]:
    from rig.embedded import EmbeddedRig  # noqa: PLC0415 - needs root
    from rig.oned import DatastoreSpec, ImageSpec  # noqa: PLC0415

    times: dict[str, list[float]] = {"clone": [], "delete": [], "ln": [], "mvds": []}
    ds = DatastoreSpec(template={"DS_MAD": "eqliscsi", "TM_MAD": "eqliscsi"})
    with (
        tempfile.TemporaryDirectory(prefix="eqliscsi-tm-bench-rig-") as t,
        EmbeddedRig(Path(t) / "rig") as rig,
    ):
        sim = rig.simulator("7.0")
        img = ImageSpec(id=5, name="bench", type=2, persistent=True, size_mb=64)
        source = sim.run_ds("mkfs", sim.ds_document(img, ds), 5).info

        def timed(action: str, *args: str) -> None:
            started = time.monotonic()
            out = sim.run_tm(action, list(args))
            if not out.ok:
                raise RuntimeError(f"{action}: {out.reason}")
            times[action].append(time.monotonic() - started)

        for i in range(runs):
            vm = 700 + i
            disk = f"{SYS}/{vm}/disk.0"
            rig.put_vm(sim, VmSpec(vm, disks=[DiskSpec(0, 5, source, size_mb=64)]))
            timed("clone", f"fe:{source}", f"h1:{disk}", str(vm), "0")
            timed("delete", f"h1:{disk}", str(vm), "100")
            vmp = 800 + i
            diskp = f"{SYS}/{vmp}/disk.0"
            rig.put_vm(sim, VmSpec(vmp, disks=[DiskSpec(0, 5, source, persistent=True)]))
            timed("ln", f"fe:{source}", f"h2:{diskp}", str(vmp), "0")
            timed("mvds", f"h2:{diskp}", source, str(vmp), "100")
    return times


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--clones", type=int, default=64)
    p.add_argument("--cap", type=int, default=4)
    p.add_argument("--latency", type=float, default=0.1)
    p.add_argument("--rig", action="store_true", help="also time each action on the rig")
    p.add_argument("--runs", type=int, default=5)
    args = p.parse_args()
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    if args.rig:
        for action, values in rig_actions(args.runs).items():
            print(
                f"rig {action:6}: median {statistics.median(values):.2f} s, "
                f"min {min(values):.2f} s, max {max(values):.2f} s (n={len(values)})"
            )
    r = asyncio.run(array_bound(args.clones, args.cap, args.latency))
    verdict = "met" if r["ratio"] <= 1.15 else "missed"
    print(
        f"{args.clones} clones, cap {args.cap}, latency {args.latency * 1000:.0f} ms: "
        f"one clone alone {r['single']:.2f} s, makespan {r['makespan']:.2f} s, "
        f"array-bound minimum {r['minimum']:.2f} s, ratio {r['ratio']:.3f} "
        f"(goal <= 1.15: {verdict}); peak CLI sessions {r['peak_sessions']:.0f}, "
        f"refused by the group {r['refused']:.0f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
