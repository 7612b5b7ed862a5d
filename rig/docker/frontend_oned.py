"""The oned simulator inside the frontend container, one call per process.

``python -m rig.docker.frontend_oned <request>`` runs as oneadmin in the frontend
(:class:`rig.docker.lifecycle.ContainerFrontend` sends it with ``docker exec``).  The
request is base64 of a JSON object: ``op`` (``create``, ``register_vm``, ``run_ds``,
``run_tm``, ``run_migrate``, ``log``), the simulator's ``profile``, ``root`` and
``env``, and the op's arguments.  The answer is one JSON line on stdout: the
:class:`~rig.oned.DsOutcome` / :class:`~rig.oned.TmOutcome` fields, or ``{}``.

Requests carry no secrets (configuration names files; documents are oned's), so a
command line is a fine transport and the simulator itself does the rest exactly as
it does on the embedded rig: the remotes installed in the frontend, each version's
argv/stdin, its parsing of the answers.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from rig.oned import IMAGE_DS, PROFILES, SYSTEM_DS, DiskSpec, OnedSimulator, VmSpec

__all__ = ["decode_request", "encode_request", "main", "vm_from_json", "vm_to_json"]


def encode_request(request: Mapping[str, Any]) -> str:
    return base64.b64encode(json.dumps(request).encode()).decode("ascii")


def decode_request(text: str) -> dict[str, Any]:
    data = json.loads(base64.b64decode(text.encode("ascii"), validate=True))
    if not isinstance(data, dict):
        raise ValueError("a request is a JSON object")
    return data


def vm_to_json(vm: VmSpec) -> dict[str, Any]:
    return {"id": vm.id, "name": vm.name, "disks": [dataclasses.asdict(d) for d in vm.disks]}


def vm_from_json(data: Mapping[str, Any]) -> VmSpec:
    return VmSpec(
        id=int(data["id"]),
        name=str(data["name"]),
        disks=tuple(DiskSpec(**d) for d in data["disks"]),
    )


def _outcome(outcome: Any) -> dict[str, Any]:
    return {k: (dict(v) if isinstance(v, Mapping) else v) for k, v in vars(outcome).items()}


def _simulator(request: Mapping[str, Any]) -> OnedSimulator:
    return OnedSimulator(
        PROFILES[str(request["profile"])],
        Path(request["root"]),
        extra_env={str(k): str(v) for k, v in request["env"].items()},
    )


def handle(request: Mapping[str, Any]) -> dict[str, Any]:
    op = request["op"]
    if op == "create":
        sim = OnedSimulator.create(
            str(request["profile"]),
            Path(request["root"]),
            remotes=Path(request["remotes"]),
            conf=str(request["conf"]),
            extra_env=request["env"],
        )
        sim.register_datastore(IMAGE_DS)
        sim.register_datastore(SYSTEM_DS)
        return {}
    sim = _simulator(request)
    if op == "register_vm":
        sim.register_vm(vm_from_json(request["vm"]))
        return {}
    if op == "run_ds":
        return _outcome(sim.run_ds(request["action"], request["document"], request["object_id"]))
    if op == "run_tm":
        args: Sequence[str] = request["args"]
        return _outcome(sim.run_tm(request["action"], args, sys_tm=request.get("sys_tm")))
    if op == "run_migrate":
        return _outcome(
            sim.run_migrate(
                request["action"],
                src=request["src"],
                dst=request["dst"],
                vm_dir=request["vm_dir"],
                vm=vm_from_json(request["vm"]),
                ds_id=int(request["ds_id"]),
                sys_tm=str(request["sys_tm"]),
            )
        )
    if op == "log":
        return {"text": sim.log_file.read_text() if sim.log_file.exists() else ""}
    raise ValueError(f"unknown op {op!r}")


def main(argv: Sequence[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else list(argv)
    if len(args) != 1:
        print("usage: python -m rig.docker.frontend_oned <base64 JSON request>", file=sys.stderr)
        return 2
    print(json.dumps(handle(decode_request(args[0]))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
