"""The contract every real iSCSI target backend of the rig meets.

The native client's interop tests and the fake EqualLogic shell's data plane both
drive a backend through this protocol, so the same tests run against tgt here and
against LIO in the kernel-guest tier: only the fixture differs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from eqliscsi.secret import Secret

__all__ = ["EQUALLOGIC_IDENTITY", "ChapAccount", "Portal", "ScsiIdentity", "TargetBackend"]


@dataclass(frozen=True, slots=True)
class Portal:
    host: str
    port: int = 3260

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


@dataclass(frozen=True, slots=True)
class ChapAccount:
    user: str
    secret: Secret


@dataclass(frozen=True, slots=True)
class ScsiIdentity:
    """What a LUN's standard INQUIRY data says it is (SPC-4 §6.6.2).

    ``vendor`` is the T10 vendor identification (at most 8 ASCII characters), ``product``
    the product identification (at most 16).  Backends that cannot set them document it.
    """

    vendor: str
    product: str


# A PS Series volume answers INQUIRY with vendor "EQLOGIC" and product "100E-00"
# (equallogic-cli.md; what multipath.conf device sections match on).
EQUALLOGIC_IDENTITY = ScsiIdentity("EQLOGIC", "100E-00")


class TargetBackend(Protocol):
    """A running iSCSI target that the rig configures.

    All methods are synchronous and idempotent where that makes sense (deleting a
    missing target is not an error).  LUN numbering is the backend's: tgt reserves
    LUN 0 for its controller, so ``lun_of`` tells callers where the disk is.
    """

    @property
    def kind(self) -> str: ...  # "tgt" or "lio"

    @property
    def portal(self) -> Portal: ...

    def create_target(
        self, iqn: str, backing_file: Path, identity: ScsiIdentity | None = None
    ) -> None:
        """A target with ``backing_file`` as its disk LUN; ``identity`` sets its INQUIRY."""

    def delete_target(self, iqn: str) -> None: ...

    def lun_of(self, iqn: str) -> int: ...

    def set_initiators(self, iqn: str, initiators: list[str] | None) -> None:
        """Allow only these initiator IQNs/addresses; ``None`` allows everyone."""

    def set_chap(
        self, iqn: str, incoming: ChapAccount | None, outgoing: ChapAccount | None
    ) -> None:
        """Per-target CHAP; ``incoming`` authenticates initiators, ``outgoing`` is mutual."""

    def set_discovery_chap(
        self, incoming: ChapAccount | None, outgoing: ChapAccount | None
    ) -> None: ...

    def set_redirect(self, iqn: str, to: Portal | None) -> None:
        """Redirect logins to ``iqn`` to another portal (login status 0x0101)."""

    def session_count(self, iqn: str) -> int: ...

    def close(self) -> None: ...
