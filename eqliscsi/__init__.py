"""eqliscsi: OpenNebula storage driver for Dell EqualLogic PS Series SANs.

Subpackages:
    iscsi_discovery  native sans-IO iSCSI client (discovery, CHAP login, probe)
    san              EqualLogic Group Manager CLI client over SSH
    opennebula       datastore and transfer-manager driver actions
    cli              the ``eqliscsi`` command (discover, probe, preflight, install, rig)
"""

from __future__ import annotations

from eqliscsi import _lazy

# ``dataclasses`` imports ``inspect`` (with ``ast``, ``dis``, ``tokenize``...: ~23 M
# instructions, ~5 ms) only to call ``inspect.signature`` for a class without a
# docstring.  Every dataclass on a remote's path has one, so a remote would pay that
# import for nothing out of its 60 ms start-up budget (issues 3 and 4,
# docs/performance.md).  The first real use of ``inspect`` (asyncio, pytest, a class
# without a docstring) imports it as usual.
_lazy.defer_import("inspect")

__all__ = ["__version__"]

__version__ = "0.1.0"
