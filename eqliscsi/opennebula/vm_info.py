"""The VM document for TM actions whose argv lacks the disk's facts.

oned passes clone/ln/mv/mvds/cpds/delete only ``host:path`` words and ids (reference
§2.4).  Whether a disk is persistent, its image datastore and its requested size
live in the VM document, which the original add-on read with ``onevm show`` (§1.8)
on the front-end, where the TM runs as oneadmin with a working CLI login.  The
document is read with ``-x`` (XML) and parsed by :func:`parse_vm`.
"""

from __future__ import annotations

import subprocess
from collections.abc import Mapping

from eqliscsi.errors import DriverError
from eqliscsi.opennebula.driver_action import Vm, parse_vm

__all__ = ["VmLookupError", "load_vm"]

_TIMEOUT_S = 60.0


class VmLookupError(DriverError):
    reference = "tm-vm-lookup-failed"


def load_vm(vm_id: int, environ: Mapping[str, str]) -> Vm:
    """``onevm show -x <vm_id>`` parsed; PATH from the environment oned gave us."""
    env = dict(environ)
    try:
        proc = subprocess.run(
            ["onevm", "show", "-x", str(int(vm_id))],
            capture_output=True,
            timeout=_TIMEOUT_S,
            check=False,
            env=env,
            stdin=subprocess.DEVNULL,
        )
    except FileNotFoundError:
        raise VmLookupError(
            "The onevm command is not on the front-end's PATH; the TM driver reads each "
            "disk's facts with it, so install the OpenNebula CLI for oneadmin."
        ) from None
    except subprocess.TimeoutExpired:
        raise VmLookupError(
            f"onevm show {vm_id} did not answer within {_TIMEOUT_S:.0f} s; check that oned "
            "is running and retry."
        ) from None
    if proc.returncode != 0:
        why = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        raise VmLookupError(
            f"onevm show {vm_id} failed ({(why[-1] if why else 'no message')[:200]}); check "
            "oneadmin's CLI login (ONE_AUTH) on the front-end."
        )
    vm = parse_vm(proc.stdout)
    if vm.id != vm_id:
        raise VmLookupError(f"onevm show {vm_id} returned VM {vm.id}; retry the action.")
    return vm
