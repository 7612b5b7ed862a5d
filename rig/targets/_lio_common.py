"""What the two LIO backends share: the requests for LUNs, ACLs and CHAP.

:mod:`rig.targets.lio` sends each request to the guest agent from the host;
:mod:`rig.targets.lio_local` runs it in-process, in the guest, on the same
:class:`rig.guest.agent.LioState`.  Each defines :meth:`LioRequests._request`, which
redacts the CHAP secrets a request carries from any error it raises.
"""

from __future__ import annotations

from typing import Any

from rig.targets.base import ChapAccount

__all__ = ["LUN", "LioRequests", "chap_fields"]

LUN = 0  # every LIO volume is one fileio backstore on LUN 0


def chap_fields(acct: ChapAccount | None) -> dict[str, str] | None:
    """A CHAP account as the agent's request carries it."""
    return None if acct is None else {"user": acct.user, "secret": acct.secret.reveal_str()}


class LioRequests:
    """The backend methods that are one request each, the same on both paths."""

    def _request(
        self, op: str, *, secrets: tuple[ChapAccount | None, ...] = (), **fields: Any
    ) -> Any:
        raise NotImplementedError

    def lun_of(self, iqn: str) -> int:
        return LUN

    def set_initiators(self, iqn: str, initiators: list[str] | None) -> None:
        self._request("set_initiators", iqn=iqn, initiators=initiators)

    def set_chap(
        self, iqn: str, incoming: ChapAccount | None, outgoing: ChapAccount | None
    ) -> None:
        self._request(
            "set_chap",
            secrets=(incoming, outgoing),
            iqn=iqn,
            incoming=chap_fields(incoming),
            outgoing=chap_fields(outgoing),
        )

    def set_discovery_chap(
        self, incoming: ChapAccount | None, outgoing: ChapAccount | None
    ) -> None:
        self._request(
            "set_discovery_chap",
            secrets=(incoming, outgoing),
            incoming=chap_fields(incoming),
            outgoing=chap_fields(outgoing),
        )
