"""SAN CLI makespan: N concurrent clone actions, each its own process, through the broker.

Issue 3's goal: with ``latency`` seconds of array latency per CLI command (fake shell
fault) and a cap of ``cap`` CLI sessions, N concurrent clones finish within
1.15 x (commands x latency / cap), with no failures, never holding more than ``cap``
sessions.  ``commands`` is what the fake shell counted during the run, setup commands of
any session opened during the run included.

Every child imports its modules, reports ``ready`` and waits; the makespan runs from the
moment all of them are told ``go`` to the end of the last action, so it measures how the
broker schedules the array's sessions, not how fast 64 interpreters start on 2 cores
(that is bench/san_bench.py's per-action overhead; the spawn-to-end time is printed too).

Runs the fake EqualLogic group (rig.fake_eql, no data plane) on 127.0.0.1; nothing else is
contacted.  Usage::

    .venv/bin/python bench/san_makespan.py [--clones 64] [--latency 0.1] [--cap 4]
"""

from __future__ import annotations

import argparse
import asyncio
import compileall
import contextlib
import json
import os
import signal
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from eqliscsi.san.endpoint import SanEndpoint  # noqa: E402
from eqliscsi.san.ops import SanOps, VolumeSpec  # noqa: E402
from eqliscsi.san.session import open_session  # noqa: E402
from eqliscsi.secret import Secret  # noqa: E402
from rig.fake_eql.faults import Faults  # noqa: E402
from rig.fake_eql.server import FakeEql  # noqa: E402

PASSWORD = b"makespan-password-123"
CHILD = ROOT / "bench" / "san_clone_remote.py"
SLACK = 1.15  # the goal's allowance over the ideal schedule
SETUP_COMMANDS = 7  # stty x2 + cli-settings x5 per new session (docs/san-client.md)


@dataclass(frozen=True)
class Makespan:
    label: str
    clones: int
    latency: float
    cap: int
    commands: int  # counted by the fake shell during the run
    sessions_opened: int  # new CLI sessions during the run (each paid the setup commands)
    makespan: float  # "go" -> end of the last action
    spawn_to_end: float  # first spawn -> end of the last action
    failures: int
    max_sessions: int  # most CLI sessions the fake group saw open at once
    refused: int  # sessions the fake group refused (over its cap)

    @property
    def bound(self) -> float:
        return SLACK * self.commands * self.latency / self.cap

    @property
    def ratio(self) -> float:
        """makespan / ideal (commands x latency / cap); the goal is <= 1.15."""
        return self.makespan / (self.commands * self.latency / self.cap)

    @property
    def ok(self) -> bool:
        return self.failures == 0 and self.max_sessions <= self.cap and self.makespan <= self.bound


class _Child:
    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc

    async def line(self, limit: float) -> str:
        assert self.proc.stdout is not None
        return (await asyncio.wait_for(self.proc.stdout.readline(), limit)).decode()

    def send(self, text: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(text.encode() + b"\n")


async def _spawn(request: dict[str, object]) -> _Child:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(CHILD),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    child = _Child(proc)
    child.send(json.dumps(request))
    return child


async def _ready(requests: list[dict[str, object]], limit: float) -> list[_Child]:
    """Spawn one child per request and wait until each has imported everything."""
    children: list[_Child] = []
    try:
        for r in requests:
            children.append(await _spawn(r))
        for ch in children:
            if (await ch.line(limit)).strip() != "ready":
                raise RuntimeError("a clone process did not start; run it by hand to see why")
    except BaseException:
        await _reap(children)
        raise
    return children


async def _release(children: list[_Child], limit: float) -> tuple[float, float, int]:
    """Tell every child to go at once: (t_go, t_end, failures)."""
    try:
        t_go = time.monotonic()
        for ch in children:
            ch.send("go")
        failures, t_end = 0, t_go
        for ch in children:
            raw = await ch.line(limit)
            res = json.loads(raw) if raw.strip() else {"ok": False, "end": time.monotonic()}
            await asyncio.wait_for(ch.proc.wait(), limit)
            failures += not (res.get("ok") and ch.proc.returncode == 0)
            t_end = max(t_end, float(res["end"]))
        return t_go, t_end, failures
    finally:
        await _reap(children)


async def _reap(children: list[_Child]) -> None:
    for ch in children:
        if ch.proc.returncode is None:
            ch.proc.kill()
            await ch.proc.wait()


async def run_makespan(
    workdir: Path,
    *,
    clones: int = 64,
    latency: float = 0.1,
    cap: int = 4,
    warm: bool = True,
    limit: float = 300.0,
) -> Makespan:
    """Start a fake group and a broker under ``workdir``, then time ``clones`` clones.

    ``warm``: the broker already holds ``cap`` warm sessions (steady state); otherwise no
    broker runs, so the first clone starts it and the run pays the SSH logins and setup
    commands of every session it opens.
    """
    compileall.compile_dir(str(ROOT / "eqliscsi"), quiet=1)  # as an installed package would
    fake = FakeEql(workdir / "fake", group_name="mk", account="grpadmin", password=Secret(PASSWORD))
    host, port = await fake.start()
    kh = workdir / "known_hosts"
    kh.write_text(f"[{host}]:{port} {fake.host_key().export_public_key().decode().strip()}\n")
    ep = SanEndpoint(host, "grpadmin", port=port, password=Secret(PASSWORD), known_hosts=str(kh))
    broker_dir = workdir / "broker"
    try:
        async with open_session(ep) as s:
            await SanOps(s, 100).create_volume(VolumeSpec("src", 100))
        # The group refuses sessions beyond the cap, so a broker that overshoots fails.
        fake.set_faults(Faults(latency=latency, max_sessions=cap))
        base: dict[str, object] = {
            "endpoint": ep.to_wire(),
            "broker_dir": str(broker_dir),
            "max_sessions": cap,
            "queue_timeout": limit,
        }
        warm_req = {**base, "action": "warm"}
        if warm:
            await _release(await _ready([warm_req], limit), limit)  # starts the broker
        reqs = [
            {**base, "action": "clone", "source": "src", "name": f"c{i}", "size_mb": 200}
            for i in range(clones)
        ]
        t_spawn = time.monotonic()
        ready = await _ready(reqs, limit)
        try:
            if warm:
                # Open `cap` sessions at once, just before the run: the broker probes a
                # session idle for more than 5 s, and starting the clones took a while.
                await _release(await _ready([warm_req] * cap, limit), limit)
            fake.max_sessions_seen = fake.sessions_open
            commands0, refused0 = fake.commands_run, fake.sessions_refused
            opened0 = fake.sessions_started
        except BaseException:
            await _reap(ready)
            raise
        t_go, end, failures = await _release(ready, limit)
        return Makespan(
            label="warm broker" if warm else "no broker yet",
            clones=clones,
            latency=latency,
            cap=cap,
            commands=fake.commands_run - commands0,
            sessions_opened=fake.sessions_started - opened0,
            makespan=end - t_go,
            spawn_to_end=end - t_spawn,
            failures=failures + fake.sessions_refused - refused0,
            max_sessions=fake.max_sessions_seen,
            refused=fake.sessions_refused - refused0,
        )
    finally:
        with contextlib.suppress(OSError, ValueError):
            os.kill(int((broker_dir / "broker.pid").read_text()), signal.SIGTERM)
        await fake.close()


def table(rows: list[Makespan]) -> str:
    head = (
        "| Run | clones | latency | cap | commands (new sessions) | makespan | bound | ratio "
        "| failures | max sessions | spawn → end |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|"
    )
    lines = [head]
    for r in rows:
        lines.append(
            f"| {r.label} | {r.clones} | {r.latency * 1000:g} ms | {r.cap} "
            f"| {r.commands} ({r.sessions_opened}) | {r.makespan:.2f} s | {r.bound:.2f} s "
            f"| {r.ratio:.3f} | {r.failures} | {r.max_sessions} | {r.spawn_to_end:.2f} s |"
        )
    return "\n".join(lines)


async def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clones", type=int, default=64)
    ap.add_argument("--latency", type=float, default=0.1)
    ap.add_argument("--cap", type=int, default=4)
    ap.add_argument("--cold", action="store_true", help="also run without a broker started")
    args = ap.parse_args()
    rows = []
    for warm in (True, False) if args.cold else (True,):
        with tempfile.TemporaryDirectory() as tmp:
            rows.append(
                await run_makespan(
                    Path(tmp), clones=args.clones, latency=args.latency, cap=args.cap, warm=warm
                )
            )
    print(table(rows))
    load = os.getloadavg()
    print(
        f"\nload average at the end: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; "
        f"cpus={os.cpu_count()}; goal: ratio <= {SLACK}, no failures, max sessions <= cap"
    )
    return 0 if all(r.ok for r in rows) else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
