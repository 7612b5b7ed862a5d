"""Datastore driver benchmark (issue 4): remote start-up and cp throughput.

Everything runs on 127.0.0.1: a fake EqualLogic group (rig.fake_eql, in this process)
with its tgt data plane, the oned simulator running the real remotes, and the
warm-session broker those remotes use through ``EQLISCSI_BROKER_DIR``.

* **start-up**: from just before the simulator spawns ``datastore/eqliscsi/monitor``
  (6.10 convention: id in argv, document on stdin) to the moment the fake group's shell
  receives the action's first CLI line, with the broker already holding a warm session.
  The shell is in this process, so both instants are on the same clock.
  The remote's CPU time up to that moment (``/proc/<pid>/schedstat``, read when the
  command arrives; the remote is then blocked waiting for the reply) is reported
  next to it: unlike wall time it barely depends on what else the machine runs.
  ``--installed`` runs the remotes as ``eqliscsi install`` writes them (executed
  through their ``#!`` line, the way oned runs them) instead of ``python <script>``;
  ``--interpreter PATH`` installs them for another interpreter (for example a venv
  with a non-editable install of this package).
* **cp**: a 1 GiB qcow2 holding 256 MiB of data, registered with ``cp`` (volume create,
  LUN probe, qemu-img convert over libiscsi) versus a bare ``qemu-img convert`` of the
  same image to another volume of the same group in the same run; and the LUN backing
  file's allocation (``st_blocks``) against the data size.

Usage::

    .venv/bin/python bench/ds_bench.py [--runs 30] [--json out.json] [--startup-only]
        [--installed [--interpreter /path/to/venv/bin/python]] [--pythonpath OLD_CHECKOUT]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from eqliscsi.secret import Secret  # noqa: E402
from rig.fake_eql import server as fake_server  # noqa: E402
from rig.fake_eql.__main__ import make_backends  # noqa: E402
from rig.fake_eql.dataplane import DataPlane  # noqa: E402
from rig.fake_eql.server import FakeEql  # noqa: E402
from rig.fake_eql.shell import EqlShell  # noqa: E402
from rig.oned import DatastoreSpec, ImageSpec, OnedSimulator  # noqa: E402
from rig.targets.base import Portal  # noqa: E402
from rig.targets.tgt import free_port  # noqa: E402

PASSWORD = b"ds-bench-password-1"
MiB = 1024 * 1024
DS = DatastoreSpec(template={"DS_MAD": "eqliscsi", "TM_MAD": "eqliscsi", "EQL_POOL": "default"})
FED: list[tuple[float, bytes, float | None]] = []
REMOTE_PIDS: list[int] = []


def _cpu_ms(pid: int) -> float | None:
    # schedstat's first field: nanoseconds this task has run on a CPU (threads of a
    # single-threaded remote: just the one).
    try:
        with open(f"/proc/{pid}/schedstat") as f:
            return int(f.read().split()[0]) / 1e6
    except (OSError, ValueError, IndexError):
        return None


class _TimedShell(EqlShell):
    def feed(self, data: bytes):  # type: ignore[no-untyped-def]
        now = time.monotonic()
        FED.append((now, data, _cpu_ms(REMOTE_PIDS[-1]) if REMOTE_PIDS else None))
        return super().feed(data)


class _RecordingPopen(subprocess.Popen):  # type: ignore[type-arg]
    """The simulator's Popen, remembering the remote's pid for its CPU time."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        REMOTE_PIDS.append(self.pid)


def _first_command_after(t0: float) -> tuple[float, float | None] | None:
    for t, data, cpu in FED:
        # The broker's own keep-alive probe is not the action's command.
        if t >= t0 and not data.startswith(b"cli-settings"):
            return t, cpu
    return None


def _stop_broker(directory: Path) -> None:
    try:
        pid = int((directory / "broker.pid").read_text().strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError):
        return
    if b"eqliscsi.san.broker" in cmdline:
        os.kill(pid, signal.SIGTERM)


def _make_image(path: Path) -> None:
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(path), "1G"], check=True)
    # 16 islands of 16 MiB, 64 MiB apart: 256 MiB of data, the rest holes.
    cmds: list[str] = []
    for i in range(16):
        cmds += ["-c", f"write -P {0x10 + i} {i * 64}M 16M"]
    subprocess.run(["qemu-io", "-f", "qcow2", *cmds, str(path)], check=True, capture_output=True)


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def run(
    runs: int,
    *,
    startup_only: bool = False,
    installed: bool = False,
    interpreter: str = "",
    pythonpath: str = "",
) -> dict[str, Any]:
    fake_server.EqlShell = _TimedShell  # type: ignore[misc]
    tmp = Path(tempfile.mkdtemp(prefix="ds-bench-"))
    state = tmp / "fake"
    state.mkdir()
    portal = Portal("127.0.0.1", free_port())
    backend, member = make_backends("tgt", portal, state)
    plane = DataPlane(backend, state / "luns", member=member)
    fake = FakeEql(
        state, group_name="bench", account="grpadmin", password=Secret(PASSWORD),
        dataplane=plane, group_ip="127.0.0.1",
    )  # fmt: skip
    broker_dir = tmp / "broker"
    result: dict[str, Any] = {}
    try:
        host, port = await fake.start("127.0.0.1", 0)
        known = tmp / "known_hosts"
        known.write_text(
            f"[{host}]:{port} {fake.host_key().export_public_key().decode().strip()}\n"
        )
        pw = tmp / "password"
        pw.write_bytes(PASSWORD)
        pw.chmod(0o600)
        conf = (
            f"EQL_HOST={host}\nEQL_SSH_PORT={port}\nEQL_USER=grpadmin\nEQL_PASS_FILE={pw}\n"
            f"EQL_KNOWN_HOSTS={known}\nEQL_PORTAL={portal.host}:{portal.port}\n"
            "EQL_SECURITY_ACCESS='ipaddress 127.0.0.*'\n"
            "EQL_THINPROVISION='thin-provision thin-min-reserve 20%'\n"
        )
        env = {"EQLISCSI_BROKER_DIR": str(broker_dir), "EQLISCSI_LOCK_DIR": str(tmp / "locks")}
        if pythonpath:
            # Before/after comparisons: the remotes import the eqliscsi found there
            # (an older checkout) ahead of this one.
            env["PYTHONPATH"] = pythonpath
        if installed:
            # As on a front-end: `eqliscsi install` writes the remotes with a #! line
            # for the interpreter, and oned executes them directly.
            from eqliscsi.cli.install import install_remotes  # noqa: PLC0415

            one = tmp / "one-remotes"
            one.mkdir()
            install_remotes(one, interpreter=interpreter or sys.executable)
            sim = OnedSimulator.create(
                "6.10", tmp / "sim", conf=conf, extra_env=env, remotes=one, interpreter=None
            )
            result["shebang"] = (one / "datastore/eqliscsi/monitor").read_text().split("\n")[0]
        else:
            sim = OnedSimulator.create("6.10", tmp / "sim", conf=conf, extra_env=env)
            result["shebang"] = f"(run as {sys.executable} <script>)"
        doc = sim.ds_document(None, DS)

        warm = await asyncio.to_thread(sim.run_ds, "monitor", doc, 100)  # starts the broker
        assert warm.ok, warm.stderr
        startup: list[float] = []
        cpu: list[float] = []
        real_popen = subprocess.Popen
        subprocess.Popen = _RecordingPopen  # type: ignore[misc]
        try:
            for _ in range(runs):
                FED.clear()
                t0 = time.monotonic()
                out = await asyncio.to_thread(sim.run_ds, "monitor", doc, 100)
                assert out.ok, out.stderr
                first = _first_command_after(t0)
                assert first is not None, "the remote sent no CLI command"
                startup.append((first[0] - t0) * 1000)
                if first[1] is not None:
                    cpu.append(first[1])
        finally:
            subprocess.Popen = real_popen  # type: ignore[misc]
        result["startup_ms"] = {
            "median": statistics.median(startup),
            "p90": _pct(startup, 0.9),
            "min": min(startup),
            "runs": runs,
        }
        result["startup_cpu_ms"] = {
            "median": statistics.median(cpu) if cpu else None,
            "min": min(cpu) if cpu else None,
            "runs": len(cpu),
        }

        spawn: list[float] = []
        python = interpreter or sys.executable
        for _ in range(runs):
            t0 = time.monotonic()
            await asyncio.to_thread(subprocess.run, [python, "-c", "pass"], check=True)
            spawn.append((time.monotonic() - t0) * 1000)
        probe = (
            "import sys, eqliscsi.opennebula.runner, eqliscsi.opennebula.actions.ds_volumes, "
            "eqliscsi.san.broker_sync; print(' '.join(m for m in ('asyncssh', 'asyncio', "
            "'construct', 'rich', 'ssl', 'click') if m in sys.modules))"
        )
        heavy_run = await asyncio.to_thread(
            subprocess.run, [python, "-c", probe], capture_output=True, text=True
        )
        heavy = heavy_run.stdout.strip()
        result["baseline"] = {
            "python_c_ms": statistics.median(spawn),
            "heavy_imports": heavy,
            "loadavg": " ".join(f"{x:.1f}" for x in os.getloadavg()),
        }
        if startup_only:
            return result

        image = tmp / "big.qcow2"
        await asyncio.to_thread(_make_image, image)
        data_bytes = 256 * MiB
        t0 = time.monotonic()
        out = await asyncio.to_thread(
            sim.run_ds, "cp", sim.ds_document(ImageSpec(id=1, name="big", path=str(image)), DS), 1
        )
        cp_s = time.monotonic() - t0
        assert out.ok, out.stderr
        backing = plane.lun_path(fake.san.volumes["big.1"].uid)
        alloc = os.stat(backing).st_blocks * 512

        # The peer: a bare qemu-img convert of the same image to a same-sized volume.
        made = await asyncio.to_thread(
            sim.run_ds,
            "mkfs",
            sim.ds_document(ImageSpec(id=2, name="peer", type=2, size_mb=1024), DS),
            2,
        )
        assert made.ok, made.stderr
        peer = fake.san.volumes["peer.2"]
        opts = (
            f"driver=raw,file.driver=iscsi,file.transport=tcp,file.portal={portal.host}:"
            f"{portal.port},file.target={peer.iqn},file.lun=1"
        )
        argv = ["qemu-img", "convert", "-n", "-f", "qcow2", str(image), "--target-image-opts", opts]
        t0 = time.monotonic()
        done = await asyncio.to_thread(subprocess.run, argv, capture_output=True, check=False)
        peer_s = time.monotonic() - t0
        assert done.returncode == 0, done.stderr
        peer_alloc = os.stat(plane.lun_path(peer.uid)).st_blocks * 512
        result["cp"] = {
            "cp_s": cp_s,
            "cp_MiB_s": data_bytes / MiB / cp_s,
            "bare_convert_s": peer_s,
            "bare_MiB_s": data_bytes / MiB / peer_s,
            "ratio": peer_s / cp_s,
            "allocated_MiB": alloc / MiB,
            "allocation_ratio": alloc / data_bytes,
            "bare_allocated_MiB": peer_alloc / MiB,
        }
    finally:
        _stop_broker(broker_dir)
        await fake.close()
        with contextlib.suppress(Exception):
            plane.close()
        backend.close()
        if member is not None:
            member.close()
    return result


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--startup-only", action="store_true", help="skip the cp measurement")
    ap.add_argument("--installed", action="store_true", help="run remotes via their #! line")
    ap.add_argument("--interpreter", default="", help="with --installed: the remotes' python")
    ap.add_argument("--pythonpath", default="", help="PYTHONPATH of the remotes (A/B runs)")
    args = ap.parse_args()
    result = asyncio.run(
        run(
            args.runs,
            startup_only=args.startup_only,
            installed=args.installed,
            interpreter=args.interpreter,
            pythonpath=args.pythonpath,
        )
    )
    s = result["startup_ms"]
    u = result["startup_cpu_ms"]
    print(
        f"remotes: {result['shebang']}"
        + (f" PYTHONPATH={args.pythonpath}" if args.pythonpath else "")
    )
    print(f"monitor start-up, warm broker: median {s['median']:.0f} ms, p90 {s['p90']:.0f} ms, "
          f"min {s['min']:.0f} ms ({s['runs']} runs; goal <= 60 ms)")  # fmt: skip
    if u["median"] is not None:
        print(f"  its CPU time up to the first command: median {u['median']:.1f} ms, "
              f"min {u['min']:.1f} ms")  # fmt: skip
    b = result["baseline"]
    print(f"interpreter start only (python -c pass): median {b['python_c_ms']:.0f} ms; "
          f"heavy modules on the monitor path: {b['heavy_imports'] or 'none'}; "
          f"load average {b['loadavg']}")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    if "cp" not in result:
        return
    c = result["cp"]
    print(f"cp 1 GiB qcow2 / 256 MiB data: {c['cp_s']:.2f} s ({c['cp_MiB_s']:.0f} MiB/s); "
          f"bare qemu-img convert {c['bare_convert_s']:.2f} s; "
          f"ratio {c['ratio']:.2f} (goal >= 0.9)")  # fmt: skip
    print(f"LUN allocation {c['allocated_MiB']:.1f} MiB = {c['allocation_ratio']:.3f} x data "
          f"(goal <= 1.05); after the bare convert {c['bare_allocated_MiB']:.1f} MiB")  # fmt: skip


if __name__ == "__main__":
    main()
