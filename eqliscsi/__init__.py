"""eqliscsi: OpenNebula storage driver for Dell EqualLogic PS Series SANs.

Subpackages:
    iscsi_discovery  native sans-IO iSCSI client (discovery, CHAP login, probe)
    san              EqualLogic Group Manager CLI client over SSH
    opennebula       datastore and transfer-manager driver actions
    cli              the ``eqliscsi`` command (discover, probe, preflight, install, rig)
"""

from __future__ import annotations

__all__ = ["__version__"]

__version__ = "0.1.0"
