"""``verify`` checks a TC3 signature for the service it is told, so any emulated API can use it."""

from __future__ import annotations

import pytest

from streamguard.emulator.auth import AuthFailure, verify
from streamguard.tencentcloud.signing import authorization_header
from tests.support.ams import CREDENTIALS, KEYS, SECRET_ID

NOW = 1_767_225_600  # 2026-01-01T00:00:00Z


def signed_for(service: str, body: bytes) -> dict[str, str]:
    headers = {"Content-Type": "application/json", "Host": "emulator.test"}
    headers["X-TC-Timestamp"] = str(NOW)
    headers["Authorization"] = authorization_header(CREDENTIALS, service, NOW, headers, body)
    return headers


def test_a_request_verifies_only_for_the_service_it_was_signed_for() -> None:
    body = b'{"Limit": 1}'
    assert verify(signed_for("ams", body), body, KEYS, NOW, service="ams") == SECRET_ID
    assert verify(signed_for("ims", body), body, KEYS, NOW, service="ims") == SECRET_ID
    with pytest.raises(AuthFailure) as refused:
        verify(signed_for("ams", body), body, KEYS, NOW, service="ims")
    assert refused.value.code == "AuthFailure.SignatureFailure"
    assert "/ims/tc3_request" in refused.value.message
