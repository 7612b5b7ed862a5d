"""Child process of bench/san_bench.py: one remote-like action through the warm broker.

Prints the ``time.monotonic()`` of its first CLI command (CLOCK_MONOTONIC is system-wide,
so the parent subtracts its own spawn time) and its CPU time up to then.  Input (with the
password) comes on stdin, never argv.  ``"sync": true`` uses the blocking client, which
imports neither asyncio nor asyncssh.
"""

import json
import sys
import time

from eqliscsi.san.broker_common import BrokerConfig
from eqliscsi.san.endpoint import SanEndpoint
from eqliscsi.san.ops import SanOps


async def action(runner, out):  # type: ignore[no-untyped-def]
    # CPU time of this process up to the first command (interpreter start included):
    # unlike wall time it barely depends on what else the machine is doing.
    out["cpu"] = time.process_time()
    await SanOps(runner, 100).group_ip()
    out["first_sent"] = runner.first_sent_at
    out["reused"] = runner.reused


def main() -> dict[str, object]:
    req = json.loads(sys.stdin.read())
    ep = SanEndpoint.from_wire(req["endpoint"])
    cfg = BrokerConfig(directory=req["broker_dir"], fallback_direct=False)
    out: dict[str, object] = {}
    if req.get("sync"):
        from eqliscsi.san.broker_sync import drive, sync_broker_session  # noqa: PLC0415

        with sync_broker_session(ep, cfg) as runner:
            drive(action(runner, out))
    else:
        import asyncio  # noqa: PLC0415 - each variant imports only what it measures

        from eqliscsi.san.broker_client import broker_session  # noqa: PLC0415

        async def run() -> None:
            async with broker_session(ep, cfg) as runner:
                await action(runner, out)

        asyncio.run(run())
    out["asyncssh"] = "asyncssh" in sys.modules
    out["asyncio"] = "asyncio" in sys.modules
    return out


if __name__ == "__main__":
    print(json.dumps(main()))
