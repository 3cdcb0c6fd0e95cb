"""TC3 signing and the callback signature reproduce the spec's test vectors (§2.2, §2.4, §4.4)."""

from __future__ import annotations

import hashlib

from streamguard.tencentcloud.signing import (
    Credentials,
    authorization_header,
    callback_signature,
    canonical_request,
    parse_authorization,
    signature,
)

KEYS = Credentials("AKIDz8krbsJ5yKBZQpn74WFkmLPx3EXAMPLE", "Gu5t9xGARNpq86cd98joQYCN3EXAMPLE")
TIMESTAMP = 1551113065


def test_vector_a_official_example() -> None:
    body = (
        b'{"Limit": 1, "Filters": [{"Values": ["\\u672a\\u547d\\u540d"], "Name": "instance-name"}]}'
    )
    assert hashlib.sha256(body).hexdigest() == (
        "35e9c5b0e3ae67532d3c9f17ead6c90222632e5b1ff7f6e89887f1398934f064"
    )
    headers = {"Content-Type": "application/json; charset=utf-8", "Host": "cvm.tencentcloudapi.com"}
    request = canonical_request("POST", "/", "", headers, ["content-type", "host"], body)
    assert hashlib.sha256(request.encode()).hexdigest() == (
        "5ffe6a04c0664d6b969fab9a13bdab201d63ee709638e2749d62a09ca18d7031"
    )
    assert signature(KEYS.secret_key, "cvm", TIMESTAMP, request) == (
        "72e494ea809ad7a8c8f7a4507b9bddcbaa8e581f516e8da2f66e2c5a96525168"
    )


def test_vector_c_ams_shaped_authorization_header() -> None:
    body = b'{"TaskId": "task-audio-XwxJtbkKXWgCt8AZ"}'
    headers = {"Content-Type": "application/json", "Host": "ams.tencentcloudapi.com"}
    request = canonical_request("POST", "/", "", headers, ["content-type", "host"], body)
    assert hashlib.sha256(request.encode()).hexdigest() == (
        "bb063741b992c5aa9bae595bc709392bc9ff33feb73166b8e0e336ac7296a027"
    )
    header = authorization_header(KEYS, "ams", TIMESTAMP, headers, body)
    assert header == (
        "TC3-HMAC-SHA256 Credential=AKIDz8krbsJ5yKBZQpn74WFkmLPx3EXAMPLE/2019-02-25/ams/"
        "tc3_request, SignedHeaders=content-type;host, "
        "Signature=086b5cfe063ae2bb74688445239fc3c94c9e12ddb86fd48de19b0c39b3dfab06"
    )
    parsed = parse_authorization(header)
    assert parsed is not None
    assert (parsed.secret_id, parsed.date, parsed.service) == (KEYS.secret_id, "2019-02-25", "ams")
    assert parsed.signed_headers == ("content-type", "host")


def test_malformed_authorization_is_not_parsed() -> None:
    assert parse_authorization("HMAC Credential=x") is None
    assert parse_authorization("TC3-HMAC-SHA256 Credential=a/2019-02-25/ams/tc3_request") is None


def test_callback_signature_vector() -> None:
    body = b'{"TaskId": "task-video-X0zpcRUMzVidxj20","DataId":"test","Suggestion": "Block"}'
    assert callback_signature("dedb6dcc1cb7c63fde8fa5abfd57", body) == (
        "74f0ae6d1f1e4eb1ffe4162da480a812f8a4dc19fe5a52bacbcd2c862d3edcfd"
    )


def test_credentials_repr_hides_secrets() -> None:
    creds = Credentials("AKIDpublic", "very-secret-key", "sts-token")
    assert "very-secret-key" not in repr(creds)
    assert "sts-token" not in repr(creds)
