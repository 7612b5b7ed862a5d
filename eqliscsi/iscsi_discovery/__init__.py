"""Native iSCSI initiator for discovery and credential validation.

Sans-IO core (RFC 7143): PDU codec and framing, text keys, CHAP, the login state
machine and the full-feature session.  The asyncio adapter (``discover``, ``probe``,
``login``, ``validate_many``) drives these with sockets and timeouts.
"""

from __future__ import annotations

from eqliscsi.iscsi_discovery._asyncio import (
    IscsiSession,
    discover,
    login,
    probe,
    validate_many,
)
from eqliscsi.iscsi_discovery._types import (
    Auth,
    ChapAlgorithm,
    ChapCredentials,
    DiscoveredTarget,
    LunInfo,
    Portal,
    ProbeResult,
    ValidationRequest,
    ValidationResult,
)
from eqliscsi.iscsi_discovery.errors import (
    AuthenticationFailed,
    AuthorizationFailed,
    IscsiConnectionError,
    IscsiProtocolError,
    IscsiTimeout,
    LocalProtocolError,
    LoginFailed,
    MissingParameter,
    MutualAuthFailed,
    PduDecodeError,
    PduTooLarge,
    RedirectLoop,
    RemoteProtocolError,
    ScsiCommandFailed,
    TargetError,
    TargetNotFound,
    TargetRemoved,
    TooManyConnections,
)

__all__ = [
    "Auth",
    "AuthenticationFailed",
    "AuthorizationFailed",
    "ChapAlgorithm",
    "ChapCredentials",
    "DiscoveredTarget",
    "IscsiConnectionError",
    "IscsiProtocolError",
    "IscsiSession",
    "IscsiTimeout",
    "LocalProtocolError",
    "LoginFailed",
    "LunInfo",
    "MissingParameter",
    "MutualAuthFailed",
    "PduDecodeError",
    "PduTooLarge",
    "Portal",
    "ProbeResult",
    "RedirectLoop",
    "RemoteProtocolError",
    "ScsiCommandFailed",
    "TargetError",
    "TargetNotFound",
    "TargetRemoved",
    "TooManyConnections",
    "ValidationRequest",
    "ValidationResult",
    "discover",
    "login",
    "probe",
    "validate_many",
]
