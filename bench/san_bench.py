"""SAN CLI benchmark: SSH connections and CLI round trips per operation, and the per-action
overhead of a remote process with a warm broker (process start -> first CLI command).

Runs a fake EqualLogic group (rig.fake_eql) on 127.0.0.1 with no data plane; nothing else
is contacted.  Usage::

    .venv/bin/python bench/san_bench.py [--runs 30] [--json out.json]
        [--interpreter /path/to/venv/bin/python]

The overhead goal (issue 3) is a median of at most 60 ms on an idle machine.  The remote
stand-ins run with this checkout on PYTHONPATH (the rig's editable venv), or, with
``--interpreter``, with another interpreter and the eqliscsi installed there (a plain venv
with the wheel, as an admin installs it); its ``-S`` rows then put that venv's
site-packages on PYTHONPATH, which is what an install-time recorded import path does.
"""

from __future__ import annotations

import argparse
import asyncio
import compileall
import contextlib
import json
import os
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from eqliscsi.san import commands as c  # noqa: E402
from eqliscsi.san.endpoint import SanEndpoint  # noqa: E402
from eqliscsi.san.ops import SanOps, VolumeSpec  # noqa: E402
from eqliscsi.san.session import open_session  # noqa: E402
from eqliscsi.secret import Secret  # noqa: E402
from rig.fake_eql.server import FakeEql  # noqa: E402

PASSWORD = b"bench-password-123"
RULE = c.AccessRule(initiator="iqn.1993-08.org.debian:01:bench")


async def count(ep: SanEndpoint, fn: Callable[[SanOps], Awaitable[Any]]) -> tuple[int, int]:
    """(SSH connections, CLI round trips excluding the 7 setup commands) for one action."""
    async with open_session(ep) as s:
        base = s.round_trips
        await fn(SanOps(s, 100))
        trips = s.round_trips - base
    return 1, trips


async def operations(ep: SanEndpoint) -> list[tuple[str, int, int]]:
    rows: list[tuple[str, int, int]] = []
    cases: list[tuple[str, Callable[[SanOps], Awaitable[Any]]]] = [
        (
            "create (1 access rule)",
            lambda o: o.create_volume(VolumeSpec("b-1", 1024, access=(RULE,))),
        ),
        (
            "create again (idempotent)",
            lambda o: o.create_volume(VolumeSpec("b-1", 1024, access=(RULE,))),
        ),
        ("clone + grow", lambda o: o.clone_volume("b-1", VolumeSpec("b-2", 2048))),
        ("resize", lambda o: o.resize_volume("b-2", 4096)),
        ("snapshot create (named)", lambda o: o.snapshot_create("b-1", "s-1")),
        ("snapshot delete", lambda o: o.snapshot_delete("b-1", "s-1")),
        ("volume IQN lookup", lambda o: o.volume_iqn("b-1")),
        ("pool capacity", lambda o: o.pool_capacity("default")),
        ("group IP", lambda o: o.group_ip()),
        ("remove access", lambda o: o.remove_access("b-1", [RULE])),
        ("delete", lambda o: o.delete_volume("b-2")),
        ("delete missing (idempotent)", lambda o: o.delete_volume("b-2")),
    ]
    for name, fn in cases:
        conns, trips = await count(ep, fn)
        rows.append((name, conns, trips))
    return rows


CPU: dict[str, list[float]] = {}
# The remotes' interpreter and the PYTHONPATH of its plain and -S runs (see the docstring).
PY = {"python": sys.executable, "path": str(ROOT), "path_S": str(ROOT)}


def _env(flags: tuple[str, ...]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    path = PY["path_S"] if "-S" in flags else PY["path"]
    if path:
        env["PYTHONPATH"] = path
    return env


async def spawn_remote(req: bytes, *flags: str, sync: bool = False) -> float:
    t0 = time.monotonic()
    proc = await asyncio.create_subprocess_exec(
        PY["python"],
        *flags,
        str(ROOT / "bench" / "san_remote.py"),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        env=_env(flags),
    )
    body = json.loads(req)
    body["sync"] = sync
    out, _ = await asyncio.wait_for(proc.communicate(json.dumps(body).encode()), 60)
    res = json.loads(out)
    assert res["reused"] and not res["asyncssh"] and res["asyncio"] != sync, res
    CPU.setdefault(" ".join([*flags, "sync" if sync else "async"]), []).append(float(res["cpu"]))
    return float(res["first_sent"]) - t0


async def direct(ep: SanEndpoint) -> float:
    """The same read, in a new process, without the broker (imports asyncssh, new SSH)."""
    code = (
        "import asyncio,json,sys,time\n"
        "from eqliscsi.san.endpoint import SanEndpoint\n"
        "from eqliscsi.san.session import open_session\n"
        "from eqliscsi.san.ops import SanOps\n"
        "async def m():\n"
        "    ep=SanEndpoint.from_wire(json.loads(sys.stdin.read()))\n"
        "    async with open_session(ep) as s:\n"
        "        t=time.monotonic(); await SanOps(s,100).group_ip(); return t\n"
        "print(asyncio.run(m()))\n"
    )
    t0 = time.monotonic()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", code,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    out, _ = await asyncio.wait_for(proc.communicate(json.dumps(ep.to_wire()).encode()), 60)
    return float(out) - t0


async def floor(*flags: str) -> float:
    """Interpreter start alone: the part of the overhead no client code can remove."""
    t0 = time.monotonic()
    proc = await asyncio.create_subprocess_exec(
        PY["python"], *flags, "-c", "import time; print(time.monotonic())",
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    return float(out) - t0


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, round(q * (len(s) - 1)))]


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--interpreter", default="", help="the remotes' python (an installed venv)")
    args = ap.parse_args()
    if args.interpreter:
        proc = await asyncio.create_subprocess_exec(
            args.interpreter, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))",
            stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        purelib, _ = await proc.communicate()
        PY.update(python=args.interpreter, path="", path_S=purelib.decode().strip())
    # An installed package has byte code; a checkout run with PYTHONDONTWRITEBYTECODE=1
    # would otherwise compile every module in every child and measure the compiler.
    compileall.compile_dir(str(ROOT / "eqliscsi"), quiet=1)
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        fake = FakeEql(
            d / "fake", group_name="bench", account="grpadmin", password=Secret(PASSWORD)
        )
        host, port = await fake.start()
        kh = d / "known_hosts"
        kh.write_text(f"[{host}]:{port} {fake.host_key().export_public_key().decode().strip()}\n")
        ep = SanEndpoint(
            host, "grpadmin", port=port, password=Secret(PASSWORD), known_hosts=str(kh)
        )
        broker_dir = d / "broker"
        try:
            rows = await operations(ep)
            req = json.dumps({"endpoint": ep.to_wire(), "broker_dir": str(broker_dir)}).encode()
            # Warm up: the first call starts the broker and opens the session.
            with contextlib.suppress(AssertionError):
                await spawn_remote(req)
            warm = [await spawn_remote(req) for _ in range(args.runs)]
            # -S: no site-packages (the remote needs none: the broker client is stdlib-only).
            warm_s = [await spawn_remote(req, "-S") for _ in range(args.runs)]
            sync = [await spawn_remote(req, sync=True) for _ in range(args.runs)]
            sync_s = [await spawn_remote(req, "-S", sync=True) for _ in range(args.runs)]
            base = [await floor() for _ in range(args.runs)]
            base_s = [await floor("-S") for _ in range(args.runs)]
            cold = [await direct(ep) for _ in range(max(3, args.runs // 5))]
        finally:
            with contextlib.suppress(OSError, ValueError):
                os.kill(int((broker_dir / "broker.pid").read_text()), signal.SIGTERM)
            await fake.close()
    load = os.getloadavg()
    print("| Operation | SSH connections | CLI round trips (after the 7 setup commands) |")
    print("|---|---|---|")
    for name, conns, trips in rows:
        print(f"| {name} | {conns} | {trips} |")
    print()

    def line(label: str, values: list[float]) -> None:
        ms = [v * 1000 for v in values]
        print(
            f"{label}: n={len(ms)} median={statistics.median(ms):.1f} ms "
            f"p90={pct(ms, 0.9):.1f} ms min={min(ms):.1f} ms"
        )

    line("warm broker, asyncio client, process start -> first CLI command", warm)
    line("  same, CPU time of the child up to its first command", CPU["async"][-len(warm) :])
    line("warm broker, asyncio client, python -S", warm_s)
    line("warm broker, blocking client, process start -> first CLI command", sync)
    line("  same, CPU time of the child up to its first command", CPU["sync"])
    line("warm broker, blocking client, python -S", sync_s)
    line("  same, CPU time of the child up to its first command", CPU["-S sync"])
    line("interpreter start only (python -c)", base)
    line("interpreter start only (python -S -c)", base_s)
    line("direct SSH (no broker), process start -> first CLI command", cold)
    print(
        f"load average at the end: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; cpus={os.cpu_count()}"
    )
    print(f"remotes' interpreter: {PY['python']}")
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "ops": rows,
                    "warm": warm,
                    "warm_S": warm_s,
                    "base": base,
                    "base_S": base_s,
                    "sync": sync,
                    "sync_S": sync_s,
                    "cpu": CPU,
                    "direct": cold,
                    "load": load,
                }
            )
        )


if __name__ == "__main__":
    asyncio.run(main())
