"""A fake Dell EqualLogic PS Series group: Group Manager CLI over SSH, real iSCSI data.

Layers (each importable on its own): :mod:`.model` (pure SAN objects and rules),
:mod:`.commands` (the CLI grammar over the model), :mod:`.shell` (sans-IO terminal:
bytes in, events out), :mod:`.store` (JSON persistence), :mod:`.dataplane` (backing
files and iSCSI targets through a ``TargetBackend``), :mod:`.faults` (injected faults)
and :mod:`.server` (the asyncssh adapter).  ``python -m rig.fake_eql`` runs one.
"""
