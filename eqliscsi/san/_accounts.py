"""The ``account select NAME show`` block (see :mod:`eqliscsi.san.parsers`).

Imported by ``parsers`` on first use of one of its names (PEP 562): only the
preflight reads accounts, and every remote pays its imports on each oned call
(docs/performance.md, "Remote start-up").
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

from eqliscsi.san.parsers import _require, parse_key_values

__all__ = ["AccountInfo", "AccountType", "parse_account"]


class AccountType(enum.Enum):
    """Administration account types (Administrator's Guide, "Account Permissions")."""

    GROUP_ADMIN = "group-admin"
    POOL_ADMIN = "pool-admin"
    VOLUME_ADMIN = "volume-admin"
    READ_ONLY = "read-only"


@dataclass(frozen=True, slots=True)
class AccountInfo:
    """``account select NAME show``: the account's type and pools."""

    name: str
    type: AccountType | None  # None: a type this parser does not know
    type_text: str
    pools: tuple[str, ...]


def parse_account(lines: Sequence[str]) -> AccountInfo:
    """``account select NAME show``: ``Name:``, ``Type:`` and ``Pools:`` (comma-separated).

    The key names are unverified [U]; an unknown type is kept as text (``type`` None)
    so the caller can say what it saw instead of guessing what it allows.
    """
    kv = parse_key_values(lines)
    text = _require(kv, "Type", "account select show")
    try:
        kind: AccountType | None = AccountType(text.strip().lower())
    except ValueError:
        kind = None
    pools = tuple(p.strip() for p in kv.get("Pools", "").split(",") if p.strip())
    return AccountInfo(kv.get("Name", ""), kind, text.strip(), pools)
