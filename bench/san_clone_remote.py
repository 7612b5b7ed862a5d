"""Child process of bench/san_makespan.py: one clone through the broker, started on a signal.

Protocol (stdin/stdout, JSON lines; the endpoint with its password arrives on stdin, never
argv): read the request, import everything, print ``ready``, wait for ``go``, run one
``SanOps.clone_volume`` (or ``group_ip`` for ``"warm"``) with the blocking broker client
and print ``{"ok", "start", "end", "reused", "error"}`` (``time.monotonic()``, which is
system-wide, so the parent compares it with its own clock).
"""

import json
import sys
import time

from eqliscsi.errors import EqliscsiError
from eqliscsi.san.broker_common import BrokerConfig
from eqliscsi.san.broker_sync import drive, sync_broker_session
from eqliscsi.san.endpoint import SanEndpoint
from eqliscsi.san.ops import SanOps, VolumeSpec


def main() -> int:
    req = json.loads(sys.stdin.readline())
    ep = SanEndpoint.from_wire(req["endpoint"])
    cfg = BrokerConfig(
        directory=req["broker_dir"],
        max_sessions=int(req["max_sessions"]),
        fallback_direct=False,  # a fallback would open sessions behind the cap's back
        queue_timeout=float(req.get("queue_timeout", 120.0)),
    )
    print("ready", flush=True)
    if sys.stdin.readline().strip() != "go":
        return 2
    out: dict[str, object] = {"start": time.monotonic()}

    async def action(runner) -> None:  # type: ignore[no-untyped-def]
        ops = SanOps(runner, 100)
        if req["action"] == "warm":
            await ops.group_ip()
        else:
            await ops.clone_volume(req["source"], VolumeSpec(req["name"], int(req["size_mb"])))
        out["reused"] = runner.reused

    try:
        with sync_broker_session(ep, cfg) as runner:
            drive(action(runner))
        out["ok"] = True
    except EqliscsiError as exc:
        out["ok"] = False
        out["error"] = exc.message
    out["end"] = time.monotonic()
    print(json.dumps(out), flush=True)
    return 0 if out["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
