"""The sans-IO core, for the asyncio adapter (and anyone driving it by hand).

How an adapter drives one login and session (compare h11's ``Connection``)::

    config = LoginConfig(portal, initiator_name, target_name, auth)
    machine = LoginMachine(config)
    events = machine.start()                    # LoginWarning events, if any
    write(machine.data_to_send())
    while True:
        events += machine.receive_data(await read())
        write(machine.data_to_send())
        last = events[-1] if events else None
        if isinstance(last, LoginSucceeded): break
        if isinstance(last, LoginRedirected):  # reconnect: config.redirected(last.portal)
        if isinstance(last, RetryWithMd5):     # reconnect: config.md5_only()
    session = Session(config, last, machine.take_remaining())
    itt = session.send_targets(); write(session.data_to_send())
    ... session.receive_data(await read()) -> [SendTargetsCompleted(...)] ...

``validate_many`` drives :class:`CapacityProbe` instead: the same login, TEST UNIT
READY + READ CAPACITY(16) and Logout as one machine, fed until its ``outcome`` is set.

Failures are raised as :mod:`eqliscsi.iscsi_discovery.errors` exceptions; after one,
close the connection (error recovery level 0).
"""

from __future__ import annotations

from eqliscsi.iscsi_discovery._framing import ReceiveBuffer, crc32c, encode_pdu
from eqliscsi.iscsi_discovery._login import (
    LoginConfig,
    LoginEvent,
    LoginMachine,
    LoginRedirected,
    LoginState,
    LoginSucceeded,
    LoginWarning,
    RetryWithMd5,
    new_isid,
)
from eqliscsi.iscsi_discovery._negotiation import OperationalOffer, SessionParams, SessionType
from eqliscsi.iscsi_discovery._probe import CapacityAnswers, CapacityProbe, ProbePhase
from eqliscsi.iscsi_discovery._scsi import (
    DeviceType,
    ScsiStatus,
    Sense,
    SenseKey,
    StandardInquiry,
    cdb_inquiry,
    cdb_read16,
    cdb_read_capacity16,
    cdb_report_luns,
    cdb_test_unit_ready,
    cdb_write16,
    decode_lun,
    lun_info,
    parse_device_identifiers,
    parse_inquiry,
    parse_read_capacity16,
    parse_report_luns,
    parse_sense,
    parse_unit_serial,
)
from eqliscsi.iscsi_discovery._session import (
    AsyncEvent,
    LogoutCompleted,
    NopCompleted,
    ScsiCompleted,
    SendTargetsCompleted,
    Session,
    SessionEvent,
    TaskRejected,
    TextCompleted,
)
from eqliscsi.iscsi_discovery._types import check_iscsi_name

__all__ = [
    "AsyncEvent",
    "CapacityAnswers",
    "CapacityProbe",
    "DeviceType",
    "LoginConfig",
    "LoginEvent",
    "LoginMachine",
    "LoginRedirected",
    "LoginState",
    "LoginSucceeded",
    "LoginWarning",
    "LogoutCompleted",
    "NopCompleted",
    "OperationalOffer",
    "ProbePhase",
    "ReceiveBuffer",
    "RetryWithMd5",
    "ScsiCompleted",
    "ScsiStatus",
    "SendTargetsCompleted",
    "Sense",
    "SenseKey",
    "Session",
    "SessionEvent",
    "SessionParams",
    "SessionType",
    "StandardInquiry",
    "TaskRejected",
    "TextCompleted",
    "cdb_inquiry",
    "cdb_read16",
    "cdb_read_capacity16",
    "cdb_report_luns",
    "cdb_test_unit_ready",
    "cdb_write16",
    "check_iscsi_name",
    "crc32c",
    "decode_lun",
    "encode_pdu",
    "lun_info",
    "new_isid",
    "parse_device_identifiers",
    "parse_inquiry",
    "parse_read_capacity16",
    "parse_report_luns",
    "parse_sense",
    "parse_unit_serial",
]
