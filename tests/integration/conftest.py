"""Fixtures shared by several integration directories.

The kernel guest is booted at most once per session (rig/guest/pytest_plugin.py);
importing its fixtures here, and only here, makes them one session fixture for
every directory below (guest tier, the native client's ``lio`` backend, the
real-iscsiadm host tests).
"""

from rig.guest.pytest_plugin import guest_eql, guest_image, guest_vm, lio, new_volume

__all__ = ["guest_eql", "guest_image", "guest_vm", "lio", "new_volume"]
