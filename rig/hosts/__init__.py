"""Embedded-rig hypervisor hosts: namespaces, sshd and the ``iscsiadm`` stand-in."""

from rig.hosts.rig import Host, HostRig, HostRigError

__all__ = ["Host", "HostRig", "HostRigError"]
