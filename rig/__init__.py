"""Test rig: fake EqualLogic shell, real iSCSI targets, hosts, oned simulator."""
