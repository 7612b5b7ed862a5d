"""EqualLogic Group Manager CLI client.

Layers, each usable alone:

* :mod:`~eqliscsi.san.commands` — validated command builders (pure).
* :mod:`~eqliscsi.san.parsers` — parsers for the CLI's output (pure).
* :mod:`~eqliscsi.san.conversation` — the sans-IO shell conversation (prompt, echo, paging).
* :mod:`~eqliscsi.san.session` — the asyncssh adapter (imports asyncssh).
* :mod:`~eqliscsi.san.ops` — the operations the OpenNebula driver calls.
* :mod:`~eqliscsi.san.broker` / :mod:`~eqliscsi.san.broker_client` — the per-user session
  broker and its stdlib-only client (``run_action`` is the entry point for remotes).

Nothing is imported here, so that ``import eqliscsi.san.broker_client`` stays light.
"""
