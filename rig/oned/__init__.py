"""An oned stand-in: builds oned's documents and runs the remotes as oned does.

See :mod:`rig.oned.simulator` for the per-version calling behaviour and
:mod:`rig.oned.documents` for the XML shapes.
"""

from __future__ import annotations

from rig.oned.documents import IMAGE_DS, SYSTEM_DS, DatastoreSpec, DiskSpec, ImageSpec, VmSpec
from rig.oned.simulator import PROFILES, DsOutcome, OnedProfile, OnedSimulator, TmOutcome

__all__ = [
    "IMAGE_DS",
    "PROFILES",
    "SYSTEM_DS",
    "DatastoreSpec",
    "DiskSpec",
    "DsOutcome",
    "ImageSpec",
    "OnedProfile",
    "OnedSimulator",
    "TmOutcome",
    "VmSpec",
]
