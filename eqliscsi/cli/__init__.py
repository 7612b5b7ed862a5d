"""The ``eqliscsi`` command line: thin commands over the library (pip/trezorctl style)."""
