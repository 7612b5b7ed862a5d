"""``python -m rig.hosts up|down|status WORKDIR``: the embedded rig's hosts by hand.

``up`` leaves the hosts running and prints the ssh_config to use
(``ssh -F WORKDIR/ssh_config h1``) and the bridge address to bind targets on;
``down`` reads ``WORKDIR/rig.json`` and removes everything ``up`` made.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rig.hosts.rig import HostRig, HostRigError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rig.hosts")
    sub = parser.add_subparsers(dest="action", required=True)
    up = sub.add_parser("up", help="create hosts under WORKDIR")
    up.add_argument("workdir", type=Path)
    up.add_argument("--count", type=int, default=2)
    up.add_argument("--data-lun", type=int, default=0, help="1 behind tgt, 0 for EqualLogic/LIO")
    for name in ("down", "status"):
        p = sub.add_parser(name)
        p.add_argument("workdir", type=Path)
    args = parser.parse_args(argv)
    try:
        if args.action == "up":
            rig = HostRig(args.workdir.resolve(), count=args.count, data_lun=args.data_lun)
            rig.up()
            print(f"ssh_config {rig.ssh_config}")
            print(f"gateway {rig.gateway}")
            for h in rig.hosts:
                print(f"host {h.name} {h.address} netns={h.netns} holder={h.holder_pid}")
        elif args.action == "down":
            HostRig.load(args.workdir.resolve()).down()
        else:
            rig = HostRig.load(args.workdir.resolve())
            print(f"processes {len(rig.processes())} loops {len(rig.loop_devices())}")
    except HostRigError as e:
        print(f"error: {e}", file=sys.stderr)
        return int(e.exit_code)
    return 0


if __name__ == "__main__":
    sys.exit(main())
