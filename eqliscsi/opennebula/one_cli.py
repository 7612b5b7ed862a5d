"""Documents TM actions must fetch themselves: ``onevm show -x`` / ``onedatastore show -x``.

TM argv carries only ``host:path`` words and ids (§2.4), so, like the original add-on
(§1.8), TM actions ask oned for the VM and the datastore.  Only integer ids reach
argv, and only after validation; the commands run with oned's environment (ONE_AUTH
of oneadmin) and a bounded time.
"""

from __future__ import annotations

import subprocess
from collections.abc import Mapping

from eqliscsi.errors import DriverError
from eqliscsi.opennebula.args import MAX_DOCUMENT_BYTES

__all__ = ["OneCliError", "datastore_document", "vm_document"]

_TIMEOUT = 60.0


class OneCliError(DriverError):
    """An OpenNebula CLI query failed."""

    reference = "driver-one-cli-failed"


def _show(command: str, object_id: int, environ: Mapping[str, str]) -> bytes:
    if isinstance(object_id, bool) or not isinstance(object_id, int) or object_id < 0:
        raise OneCliError(f"{command} needs a non-negative id, not {object_id!r}.")
    argv = [command, "show", "-x", str(object_id)]
    try:
        proc = subprocess.run(
            argv,
            capture_output=True,
            timeout=_TIMEOUT,
            check=False,
            stdin=subprocess.DEVNULL,
            env=dict(environ),
        )
    except FileNotFoundError:
        raise OneCliError(
            f"{command} is not on the PATH of oned's drivers; install the OpenNebula CLI "
            "on the front-end."
        ) from None
    except subprocess.TimeoutExpired:
        raise OneCliError(
            f"'{' '.join(argv)}' did not answer within {_TIMEOUT:.0f} s; check that oned is up."
        ) from None
    if proc.returncode != 0:
        lines = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        why = lines[-1][:200] if lines else f"exit status {proc.returncode}"
        raise OneCliError(
            f"'{' '.join(argv)}' failed ({why}); check oneadmin's ONE_AUTH on the front-end."
        )
    if len(proc.stdout) > MAX_DOCUMENT_BYTES:
        raise OneCliError(f"'{' '.join(argv)}' printed more than 16 MiB; refusing it.")
    return proc.stdout


def vm_document(vm_id: int, environ: Mapping[str, str]) -> bytes:
    return _show("onevm", vm_id, environ)


def datastore_document(ds_id: int, environ: Mapping[str, str]) -> bytes:
    return _show("onedatastore", ds_id, environ)
