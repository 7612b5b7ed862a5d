"""Real iSCSI target backends for the rig: tgt (userspace) and LIO (kernel, via rtslib-fb)."""
