"""Text key codec, SendTargets parsing and CHAP maths."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from eqliscsi.iscsi_discovery import ChapAlgorithm, ChapCredentials, DiscoveredTarget, Portal
from eqliscsi.iscsi_discovery._chap import (
    chap_response,
    decode_binary,
    encode_binary,
    new_challenge,
    parse_algorithm,
    parse_identifier,
    secret_warning,
)
from eqliscsi.iscsi_discovery._text import (
    TextAssembler,
    decode_text,
    encode_text,
    parse_send_targets,
    text_dict,
)
from eqliscsi.iscsi_discovery.errors import (
    ChapAlgorithmMismatch,
    LocalProtocolError,
    PduDecodeError,
)
from eqliscsi.secret import Secret

GROUP = Portal("10.0.0.10", 3260)


def test_encode_always_terminates() -> None:
    assert encode_text([("SendTargets", "All")]) == b"SendTargets=All\0"
    assert encode_text([("A", "1"), ("B", "")]) == b"A=1\0B=\0"


@pytest.mark.parametrize(
    "pairs",
    [
        pytest.param([("K" * 64, "v")], id="key-too-long"),
        pytest.param([("", "v")], id="key-empty"),
        pytest.param([("Bad=Key", "v")], id="key-with-equals"),
        pytest.param([("K", "v" * 256)], id="value-too-long"),
        pytest.param([("TargetName", "i" * 224)], id="name-too-long"),
        pytest.param([("CHAP_R", "0x" + "00" * 1025)], id="binary-too-long"),
        pytest.param([("K", "a\0b")], id="nul-in-value"),
    ],
)
def test_encode_rejects(pairs: list[tuple[str, str]]) -> None:
    with pytest.raises(LocalProtocolError):
        encode_text(pairs)


def test_encode_limits_inclusive() -> None:
    encode_text([("K" * 63, "v" * 255), ("TargetName", "i" * 223), ("CHAP_C", "0x" + "ab" * 1024)])


@pytest.mark.parametrize(
    ("data", "pairs"),
    [
        pytest.param(b"A=1\0B=2\0", [("A", "1"), ("B", "2")], id="simple"),
        pytest.param(b"A=1\0\0\0\0B=2\0\0\0", [("A", "1"), ("B", "2")], id="nul-runs-and-pad"),
        pytest.param(b"A=x=y\0", [("A", "x=y")], id="equals-in-value"),
        pytest.param(b"A=\0", [("A", "")], id="empty-value"),
        pytest.param(b"A=1\0A=2\0", [("A", "1"), ("A", "2")], id="duplicates-kept"),
        pytest.param(b"", [], id="empty"),
    ],
)
def test_decode(data: bytes, pairs: list[tuple[str, str]]) -> None:
    assert decode_text(data) == pairs


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"SendTargets=All", id="no-nul"),
        pytest.param(b"NoEquals\0", id="no-equals"),
        pytest.param(b"=v\0", id="empty-key"),
        pytest.param(b"K=\xff\xfe\0", id="bad-utf8"),
        pytest.param(b"K=" + b"v" * 256 + b"\0", id="value-too-long"),
    ],
)
def test_decode_rejects(data: bytes) -> None:
    with pytest.raises(PduDecodeError):
        decode_text(data)


def test_text_dict_refuses_duplicates() -> None:
    assert text_dict([("A", "1"), ("B", "2")]) == {"A": "1", "B": "2"}
    with pytest.raises(PduDecodeError, match="twice"):
        text_dict([("A", "1"), ("A", "2")])


_keys = st.text(st.sampled_from("abcXYZ019.-+@_"), min_size=1, max_size=63)
_values = st.text(st.characters(blacklist_characters="\0", max_codepoint=0x7F), max_size=255)


@given(st.lists(st.tuples(_keys, _values), max_size=20))
def test_text_round_trip(pairs: list[tuple[str, str]]) -> None:
    assert decode_text(encode_text(pairs)) == pairs


@given(st.binary(max_size=300))
def test_decode_random_bytes(data: bytes) -> None:
    try:
        pairs = decode_text(data)
    except PduDecodeError:
        return
    # whatever is accepted is canonical text: it re-encodes and parses back the same
    assert decode_text(encode_text(pairs)) == pairs


@given(st.lists(st.tuples(_keys, _values), max_size=20), st.lists(st.integers(1, 50), max_size=10))
def test_assembler_split_anywhere(pairs: list[tuple[str, str]], cuts: list[int]) -> None:
    # tgt splits mid-pair without C; any split must reassemble to the same pairs.
    data = encode_text(pairs)
    asm = TextAssembler()
    pos = 0
    for n in cuts:
        if pos + n >= len(data):
            break
        assert not asm.add(data[pos : pos + n], final=False, ttt=1)
        pos += n
    assert asm.add(data[pos:], final=True, ttt=0xFFFFFFFF)
    assert asm.pairs() == pairs


def test_assembler_final_by_reserved_ttt_and_limit() -> None:
    asm = TextAssembler()
    assert asm.add(b"A=1\0", final=False, ttt=0xFFFFFFFF)  # open-iscsi rule
    asm = TextAssembler(limit=8)
    with pytest.raises(PduDecodeError):
        asm.add(b"A=12345678\0", final=False, ttt=1)


IQN1 = "iqn.2001-05.com.equallogic:0-8a0906-83bcb3401-16e0002fd0a46f3d-vol1"
IQN2 = "iqn.2026-01.test:t2"


@pytest.mark.parametrize(
    ("pairs", "expected"),
    [
        pytest.param(
            [("TargetName", IQN1), ("TargetAddress", "10.0.0.10:3260,1")],
            [DiscoveredTarget(IQN1, (Portal("10.0.0.10", 3260, 1),))],
            id="equallogic",
        ),
        pytest.param(
            [
                ("TargetName", IQN1),
                ("TargetAlias", "vol1"),
                ("X-vendor", "x"),
                ("TargetAddress", "[fd00::5]:3261,2"),
                ("TargetAddress", "san.example.com,3"),
                ("TargetName", IQN2),
            ],
            [
                DiscoveredTarget(
                    IQN1, (Portal("fd00::5", 3261, 2), Portal("san.example.com", 3260, 3))
                ),
                DiscoveredTarget(IQN2, (GROUP,)),
            ],
            id="ipv6-dns-alias-and-no-address",
        ),
        pytest.param(
            [
                ("TargetName", IQN2),
                ("TargetAddress", "1.1.1.1:3260,1"),
                ("TargetName", IQN2),
                ("TargetAddress", "1.1.1.1:3260,1"),
                ("TargetAddress", "1.1.1.2:3260,1"),
            ],
            [DiscoveredTarget(IQN2, (Portal("1.1.1.1", 3260, 1), Portal("1.1.1.2", 3260, 1)))],
            id="listed-twice",
        ),
        pytest.param([], [], id="empty"),
    ],
)
def test_send_targets(pairs: list[tuple[str, str]], expected: list[DiscoveredTarget]) -> None:
    assert parse_send_targets(pairs, GROUP) == expected


@pytest.mark.parametrize(
    "pairs",
    [
        pytest.param([("TargetAddress", "1.1.1.1:3260,1")], id="address-first"),
        pytest.param([("TargetName", IQN2), ("TargetAddress", "a b,1")], id="bad-address"),
        pytest.param([("TargetName", "")], id="empty-name"),
    ],
)
def test_send_targets_rejects(pairs: list[tuple[str, str]]) -> None:
    with pytest.raises(PduDecodeError):
        parse_send_targets(pairs, GROUP)


# Expected digests from coreutils md5sum/sha1sum/sha256sum and openssl dgst -sha3-256 of
# printf '\x07tgt-secret-123\x01\x02\x03\x04' (identifier 7, secret, challenge 01020304).
@pytest.mark.parametrize(
    ("algorithm", "expected"),
    [
        pytest.param(ChapAlgorithm.MD5, "34d672c00a2abee9dec7b8b2ef6dcfed", id="md5"),
        pytest.param(ChapAlgorithm.SHA1, "6bae4a0dd2bde0e2155044e97b5e37ca747e4cb4", id="sha1"),
        pytest.param(
            ChapAlgorithm.SHA256,
            "b24c129d09ed3fb95691f47211122913383ca24cfa1e52c504c759dc748bbc7f",
            id="sha256",
        ),
        pytest.param(
            ChapAlgorithm.SHA3_256,
            "78b986e84b31df34120a025fb38687ea759de8158cc0ad731637766464fa8544",
            id="sha3-256",
        ),
    ],
)
def test_chap_response_vectors(algorithm: ChapAlgorithm, expected: str) -> None:
    assert chap_response(algorithm, 7, b"tgt-secret-123", bytes([1, 2, 3, 4])).hex() == expected
    assert (
        chap_response(algorithm, 7 + 256, b"tgt-secret-123", bytes([1, 2, 3, 4])).hex() == expected
    )


@pytest.mark.parametrize(
    ("text", "value"),
    [
        pytest.param("0x0102ff", b"\x01\x02\xff", id="hex"),
        pytest.param("0X0102FF", b"\x01\x02\xff", id="hex-upper"),
        pytest.param("0bAQL/", b"\x01\x02\xff", id="base64"),
        pytest.param("0BAQL/", b"\x01\x02\xff", id="base64-upper-prefix"),
    ],
)
def test_decode_binary(text: str, value: bytes) -> None:
    assert decode_binary(text, "CHAP_C") == value


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("0x123", id="odd-hex"),
        pytest.param("0xzz", id="not-hex"),
        pytest.param("0b!!!!", id="bad-base64"),
        pytest.param("1234", id="no-prefix"),
        pytest.param("0x", id="empty"),
        pytest.param("0x" + "00" * 1025, id="too-long"),
    ],
)
def test_decode_binary_rejects(text: str) -> None:
    with pytest.raises(PduDecodeError):
        decode_binary(text, "CHAP_C")


@given(st.binary(min_size=1, max_size=1024), st.booleans())
def test_binary_round_trip(value: bytes, b64: bool) -> None:
    assert decode_binary(encode_binary(value, use_base64=b64), "CHAP_C") == value


def test_identifier_and_algorithm() -> None:
    assert parse_identifier("0") == 0
    assert parse_identifier("255") == 255
    for bad in ("256", "-1", "", "0x1", "1e2"):
        with pytest.raises(PduDecodeError):
            parse_identifier(bad)
    offered = (ChapAlgorithm.SHA256, ChapAlgorithm.MD5)
    assert parse_algorithm("7", offered, GROUP) is ChapAlgorithm.SHA256
    for bad in ("6", "56", "", "MD5"):
        with pytest.raises(ChapAlgorithmMismatch):
            parse_algorithm(bad, offered, GROUP)


def test_challenge_never_reflects() -> None:
    c = new_challenge(ChapAlgorithm.MD5, avoid=bytes(16))
    assert len(c.value) == 16 and c.value != bytes(16) and 0 <= c.identifier <= 255
    assert len(new_challenge(ChapAlgorithm.SHA3_256).value) == 32


def test_secret_warning() -> None:
    assert secret_warning(ChapCredentials("u", Secret(b"x" * 12))) is None
    msg = secret_warning(ChapCredentials("u", Secret(b"short")))
    assert msg is not None and "shorter than 12" in msg and "short" not in msg.split("bytes")[1]
