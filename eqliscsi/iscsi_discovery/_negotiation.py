"""Operational key negotiation (RFC 7143 §6.2, §13) and the negotiated parameters.

We offer every operational key we care about in our first CSG=1 PDU (as libiscsi
and open-iscsi do), so the target normally only answers.  Targets may still propose
keys of their own (LIO, reference §4): we answer those with the RFC 7143 result
function (§13) applied to our value, ``Irrelevant`` for session keys in a Discovery
session, and ``NotUnderstood`` for keys we do not know.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass

from eqliscsi.iscsi_discovery.errors import RemoteProtocolError

__all__ = [
    "OperationalOffer",
    "SessionParams",
    "SessionType",
    "answer_proposals",
    "negotiated_params",
]

_SPECIAL = frozenset({"Reject", "Irrelevant", "NotUnderstood"})
# Declarative keys need no answer (RFC 7143 §6.2).
_DECLARATIVE = frozenset(
    {
        "TargetAlias",
        "TargetAddress",
        "TargetPortalGroupTag",
        "MaxRecvDataSegmentLength",
        "TargetName",
        "InitiatorName",
        "InitiatorAlias",
        "SessionType",
    }
)
_MIN_KEYS = frozenset(
    {
        "MaxConnections",
        "MaxBurstLength",
        "FirstBurstLength",
        "DefaultTime2Retain",
        "MaxOutstandingR2T",
        "ErrorRecoveryLevel",
    }
)
_MAX_KEYS = frozenset({"DefaultTime2Wait"})
_OR_KEYS = frozenset({"InitialR2T", "DataPDUInOrder", "DataSequenceInOrder"})
_AND_KEYS = frozenset({"ImmediateData", "IFMarker", "OFMarker"})
# Keys only meaningful in a Normal session (RFC 7143 §13: "Irrelevant" in Discovery).
_NORMAL_ONLY = frozenset(
    {
        "MaxConnections",
        "InitialR2T",
        "ImmediateData",
        "MaxBurstLength",
        "FirstBurstLength",
        "MaxOutstandingR2T",
        "DataPDUInOrder",
        "DataSequenceInOrder",
    }
)


class SessionType(enum.Enum):
    DISCOVERY = "Discovery"
    NORMAL = "Normal"

    __hash__ = object.__hash__  # identity, as LoginState's (a C call, not Enum's Python one)


@dataclass(frozen=True, slots=True)
class OperationalOffer:
    """What we offer in the operational stage.

    Digests are lists in preference order (``("CRC32C", "None")`` to allow both);
    a target answering a value we did not list fails the login (tgt answers
    ``None`` to a ``CRC32C``-only offer, reference §5).
    """

    max_recv_data_segment_length: int = 262144
    header_digest: tuple[str, ...] = ("None",)
    data_digest: tuple[str, ...] = ("None",)
    max_burst_length: int = 262144
    first_burst_length: int = 65536
    default_time2wait: int = 2
    default_time2retain: int = 0
    immediate_data: bool = True
    initial_r2t: bool = True

    def keys(self, session_type: SessionType) -> list[tuple[str, str]]:
        """Our operational offer, in the order libiscsi and open-iscsi send it.

        Built once per offer and session type: every login of a batch sends the same.
        """
        cached = _OFFERED.get((self, session_type))
        if cached is None:
            cached = _OFFERED[(self, session_type)] = tuple(self._keys(session_type))
            if len(_OFFERED) > _CACHE_MAX:  # offers are few; never let them pile up
                _OFFERED.clear()
        return list(cached)

    def _keys(self, session_type: SessionType) -> list[tuple[str, str]]:
        pairs = [
            ("HeaderDigest", ",".join(self.header_digest)),
            ("DataDigest", ",".join(self.data_digest)),
        ]
        if session_type is SessionType.NORMAL:
            pairs += [
                ("MaxConnections", "1"),
                ("InitialR2T", _yes(self.initial_r2t)),
                ("ImmediateData", _yes(self.immediate_data)),
            ]
        pairs.append(("MaxRecvDataSegmentLength", str(self.max_recv_data_segment_length)))
        if session_type is SessionType.NORMAL:
            pairs += [
                ("MaxBurstLength", str(self.max_burst_length)),
                ("FirstBurstLength", str(self.first_burst_length)),
            ]
        pairs += [
            ("DefaultTime2Wait", str(self.default_time2wait)),
            ("DefaultTime2Retain", str(self.default_time2retain)),
        ]
        if session_type is SessionType.NORMAL:
            pairs += [
                ("MaxOutstandingR2T", "1"),
                ("DataPDUInOrder", "Yes"),
                ("DataSequenceInOrder", "Yes"),
            ]
        pairs.append(("ErrorRecoveryLevel", "0"))
        return pairs


_CACHE_MAX = 64
_OFFERED: dict[tuple[OperationalOffer, SessionType], tuple[tuple[str, str], ...]] = {}


@dataclass(frozen=True, slots=True)
class SessionParams:
    """The outcome of negotiation, as used in the full-feature phase."""

    max_recv_data_segment_length: int  # ours: the largest data segment we accept
    max_send_data_segment_length: int  # the target's declared MaxRecvDataSegmentLength
    header_digest: bool
    data_digest: bool
    max_burst_length: int = 262144
    first_burst_length: int = 65536
    immediate_data: bool = True
    initial_r2t: bool = True
    default_time2wait: int = 2
    default_time2retain: int = 20
    target_portal_group_tag: int | None = None
    target_alias: str | None = None


def _yes(value: bool) -> str:
    return "Yes" if value else "No"


def _number(key: str, value: str) -> int:
    # RFC 7143 §6.1: decimal or 0x-hex; int(v, 0) would refuse "08", so do it by hand.
    try:
        if value[:2] in ("0x", "0X"):
            return int(value[2:], 16)
        if value.isascii() and value.isdigit():
            return int(value, 10)
    except ValueError:
        pass
    raise RemoteProtocolError(f"The target sent {key}={value[:20]!r}, which is not a number.")


def _boolean(key: str, value: str) -> bool:
    if value in ("Yes", "No"):
        return value == "Yes"
    raise RemoteProtocolError(f"The target sent {key}={value[:20]!r}; expected Yes or No.")


def answer_proposals(
    received: Mapping[str, str],
    offered: Mapping[str, str],
    session_type: SessionType,
    offer: OperationalOffer,
) -> list[tuple[str, str]]:
    """Our answers to keys the target proposed and we did not offer."""
    ours = dict(offer.keys(SessionType.NORMAL))
    out: list[tuple[str, str]] = []
    for key, value in received.items():
        if key in offered or key in _DECLARATIVE or value in _SPECIAL:
            continue
        if session_type is SessionType.DISCOVERY and key in _NORMAL_ONLY:
            out.append((key, "Irrelevant"))
        elif key in ("HeaderDigest", "DataDigest"):
            mine = offer.header_digest if key == "HeaderDigest" else offer.data_digest
            choice = next((v for v in value.split(",") if v in mine), "Reject")
            out.append((key, choice))
        elif key in _MIN_KEYS or key in _MAX_KEYS:
            theirs = _number(key, value)
            mine_n = int(ours.get(key, "0" if key == "ErrorRecoveryLevel" else str(theirs)))
            out.append((key, str(min(mine_n, theirs) if key in _MIN_KEYS else max(mine_n, theirs))))
        elif key in _OR_KEYS or key in _AND_KEYS:
            theirs_b = _boolean(key, value)
            mine_b = ours.get(key, "No" if key in _AND_KEYS else "Yes") == "Yes"
            out.append((key, _yes(mine_b or theirs_b if key in _OR_KEYS else mine_b and theirs_b)))
        else:
            out.append((key, "NotUnderstood"))
    return out


# Answers already combined: a batch logs in to one target model hundreds of times, and
# each answers the same keys alike.  Only valid results are kept, and at most
# _CACHE_MAX of them, so a target that varies its answers costs nothing more.
_NEGOTIATED: dict[tuple[tuple[tuple[str, str], ...], OperationalOffer], SessionParams] = {}


def negotiated_params(received: Mapping[str, str], offer: OperationalOffer) -> SessionParams:
    """Combine the target's answers into :class:`SessionParams`.

    Raises:
        RemoteProtocolError: an answer outside what we offered or what RFC 7143 allows.
    """
    key = (tuple(received.items()), offer)
    params = _NEGOTIATED.get(key)
    if params is None:
        params = _negotiated_params(received, offer)
        if len(_NEGOTIATED) < _CACHE_MAX:
            _NEGOTIATED[key] = params
    return params


def _negotiated_params(received: Mapping[str, str], offer: OperationalOffer) -> SessionParams:

    def digest(key: str, offered: tuple[str, ...]) -> bool:
        value = received.get(key, "None")
        if value in _SPECIAL:
            value = "None"
        if value not in offered:
            raise RemoteProtocolError(
                f"The target answered {key}={value} although we offered {','.join(offered)}; "
                "enable or disable digests on both sides alike."
            )
        return value == "CRC32C"

    def num(key: str, default: int) -> int:
        value = received.get(key)
        return default if value is None or value in _SPECIAL else _number(key, value)

    def flag(key: str, default: bool) -> bool:
        value = received.get(key)
        return default if value is None or value in _SPECIAL else _boolean(key, value)

    if num("ErrorRecoveryLevel", 0) != 0:
        raise RemoteProtocolError("The target negotiated ErrorRecoveryLevel above 0; use 0.")
    # RFC 7143 §13.12: 512..2^24-1; when the target does not declare it, 8192 applies.
    send_limit = num("MaxRecvDataSegmentLength", 8192)
    if not 512 <= send_limit <= (1 << 24) - 1:
        raise RemoteProtocolError(
            f"The target declared MaxRecvDataSegmentLength={send_limit}, outside 512-16777215."
        )
    tpgt = received.get("TargetPortalGroupTag")
    return SessionParams(
        max_recv_data_segment_length=offer.max_recv_data_segment_length,
        max_send_data_segment_length=send_limit,
        header_digest=digest("HeaderDigest", offer.header_digest),
        data_digest=digest("DataDigest", offer.data_digest),
        max_burst_length=num("MaxBurstLength", min(offer.max_burst_length, 262144)),
        first_burst_length=num("FirstBurstLength", min(offer.first_burst_length, 65536)),
        immediate_data=flag("ImmediateData", offer.immediate_data),
        initial_r2t=flag("InitialR2T", offer.initial_r2t),
        default_time2wait=num("DefaultTime2Wait", 2),
        default_time2retain=num("DefaultTime2Retain", 20),
        target_portal_group_tag=_number("TargetPortalGroupTag", tpgt) if tpgt else None,
        target_alias=received.get("TargetAlias"),
    )
