"""A stand-in for an OpenNebula remote: one SAN action through the broker, in its own process.

Reads ``{"endpoint": ..., "broker_dir": ..., "action": ..., "name": ...}`` from stdin (the
password must never be in argv) and prints a JSON result.  Used by test_broker.py.
"""

from __future__ import annotations

import json
import sys
import time

T0 = time.monotonic()

from typing import Any  # noqa: E402

from eqliscsi.san.broker_common import BrokerConfig  # noqa: E402
from eqliscsi.san.broker_sync import drive as _drive  # noqa: E402
from eqliscsi.san.broker_sync import run_action_sync  # noqa: E402
from eqliscsi.san.endpoint import SanEndpoint  # noqa: E402
from eqliscsi.san.ops import CliRunner, SanOps, VolumeSpec  # noqa: E402


def main() -> dict[str, object]:
    req = json.loads(sys.stdin.read())
    if req.get("sync"):
        return _drive(_main(req))
    import asyncio  # noqa: PLC0415 - the sync variant must not load it

    return asyncio.run(_main(req))


async def _main(req: dict[str, Any]) -> dict[str, object]:
    ep = SanEndpoint.from_wire(req["endpoint"])
    cfg = BrokerConfig(
        directory=req["broker_dir"],
        max_sessions=int(req.get("max_sessions", 4)),
        queue_timeout=float(req.get("queue_timeout", 60)),
        fallback_direct=bool(req.get("fallback_direct", False)),
    )
    first_byte: list[float] = []

    async def action(runner: CliRunner) -> str:
        first_byte.append(time.monotonic())
        ops = SanOps(runner, 100)
        if req["action"] == "create":
            ref = await ops.create_volume(VolumeSpec(req["name"], 100))
            return ref.iqn
        return await ops.group_ip()

    if req.get("sync"):
        # The blocking client: no event loop at all (asserted by the caller).
        result = run_action_sync(ep, action, broker=cfg, attempts=2, backoff=0.1)
    else:
        from eqliscsi.san.broker_client import run_action  # noqa: PLC0415

        result = await run_action(ep, action, broker=cfg, attempts=2, backoff=0.1)
    return {
        "result": result,
        "asyncssh_loaded": "asyncssh" in sys.modules,
        "asyncio_loaded": "asyncio" in sys.modules,
        "to_first_command_s": first_byte[0] - T0,
    }


if __name__ == "__main__":
    try:
        out = main()
    except Exception as exc:
        out = {"error": f"{type(exc).__name__}: {exc}"}
    print(json.dumps(out))
