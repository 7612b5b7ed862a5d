"""Child process of bench/san_bench.py: one remote-like action through the warm broker.

Prints ``{"first_sent": <time.monotonic() at the first CLI command>}``; CLOCK_MONOTONIC is
system-wide, so the parent subtracts its own spawn time.  Input (with the password) comes on
stdin, never argv.
"""

import asyncio
import json
import sys
import time
from pathlib import Path

from eqliscsi.san.broker_client import BrokerConfig, BrokerRunner, broker_session
from eqliscsi.san.endpoint import SanEndpoint
from eqliscsi.san.ops import SanOps


async def main() -> dict[str, object]:
    req = json.loads(sys.stdin.read())
    ep = SanEndpoint.from_wire(req["endpoint"])
    cfg = BrokerConfig(directory=Path(req["broker_dir"]), fallback_direct=False)
    async with broker_session(ep, cfg) as runner:
        assert isinstance(runner, BrokerRunner)
        # CPU time of this process up to the first command (interpreter start included):
        # unlike wall time it barely depends on what else the machine is doing.
        cpu = time.process_time()
        await SanOps(runner, 100).group_ip()
        return {
            "first_sent": runner.first_sent_at,
            "cpu": cpu,
            "reused": runner.reused,
            "asyncssh": "asyncssh" in sys.modules,
        }


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main())))
