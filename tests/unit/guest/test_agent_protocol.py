"""The guest agent's line-JSON protocol, on the host (no rtslib, no configfs).

Only the paths that answer before LIO is touched run here; the LIO side is the
kernel-guest tier's job (tests/integration/guest).
"""

from __future__ import annotations

import json

import pytest

from rig.guest.agent import LioState, handle_request

SECRET = "s3cret-do-not-echo"
IQN = "iqn.2001-05.com.equallogic:0-unit"

BAD_REQUESTS = [
    ("not-json", b"{nope", "JSONDecodeError"),
    ("not-an-object", b"[1, 2]", "JSON object with a string op"),
    ("no-op", b'{"iqn": "x"}', "JSON object with a string op"),
    ("unknown-op", b'{"op": "format_disk"}', "Unknown op 'format_disk'"),
    ("missing-iqn", b'{"op": "set_chap"}', "Field iqn must be a non-empty string"),
    ("empty-iqn", b'{"op": "delete_target", "iqn": ""}', "Field iqn must be a non-empty string"),
    ("unknown-target", json.dumps({"op": "set_chap", "iqn": IQN,
        "incoming": {"user": "u", "secret": SECRET}}).encode(), "was not created"),
    ("chap-not-object", json.dumps({"op": "set_discovery_chap", "incoming": SECRET}).encode(),
        "incoming must be null or an object"),
    ("chap-secret-not-string", json.dumps({"op": "set_discovery_chap",
        "outgoing": {"user": "u", "secret": 12345678901234}}).encode(),
        "outgoing must be null or an object"),
    ("initiators-not-list", json.dumps({"op": "set_initiators", "iqn": IQN,
        "initiators": "iqn.x"}).encode(), "initiators must be null or a list"),
]  # fmt: skip


@pytest.mark.parametrize(("line", "expect"), [c[1:] for c in BAD_REQUESTS],
                         ids=[c[0] for c in BAD_REQUESTS])  # fmt: skip
def test_bad_request_gets_one_line_error(line: bytes, expect: str) -> None:
    out = handle_request(LioState(), line)
    assert out.endswith(b"\n") and out.count(b"\n") == 1
    answer = json.loads(out)
    assert answer["ok"] is False
    assert expect in answer["error"]
    # Secrets travel in requests; they must never come back in an answer.
    assert SECRET not in answer["error"]
    assert "12345678901234" not in answer["error"]


def test_ping_answers_kernel_release() -> None:
    answer = json.loads(handle_request(LioState(), b'{"op": "ping"}'))
    assert answer["ok"] is True
    assert set(answer["result"]) == {"kernel", "pid"}


def test_session_count_of_absent_target_is_zero() -> None:
    # Without configfs (this host) the target directory does not exist.
    answer = json.loads(handle_request(LioState(), json.dumps(
        {"op": "session_count", "iqn": IQN}).encode()))  # fmt: skip
    assert answer == {"ok": True, "result": 0}
