"""The OpenNebula driver: DS and TM actions, oned's calling conventions and config.

* :mod:`~eqliscsi.opennebula.runner` — what every remote calls: one place decides the
  convention, stdout and error framing of the version that called (with ``args``,
  ``driver_action``, ``config`` and ``output``).
* :mod:`~eqliscsi.opennebula.actions` — the DS and TM actions.
* :mod:`~eqliscsi.opennebula.san_link` — an action's way to the SAN (warm broker or SSH).
* :mod:`~eqliscsi.opennebula.tm_host` / :mod:`~eqliscsi.opennebula.iscsiadm` — the hosts
  and their initiator.

Nothing is imported here: each remote imports only what its action needs.
"""
