"""Fixtures shared by several integration directories.

The kernel guest is booted at most once per session (rig/guest/pytest_plugin.py):
its fixtures are registered as one plugin, here and in ``tests/e2e/conftest.py``
(the TM lifecycle suite's ``rig=guest``), so every directory shares the one guest.
"""

import pytest

from rig.guest.pytest_plugin import register


def pytest_configure(config: pytest.Config) -> None:
    register(config)
