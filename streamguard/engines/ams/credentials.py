"""The AMS account a config names: its credentials, and the client that signs with them."""

from __future__ import annotations

import aiohttp
from pydantic import SecretStr

from streamguard.config.engine import AmsEngineConfig
from streamguard.core.errors import ConfigError, ConfigProblem
from streamguard.tencentcloud.client import AmsClient, RetryPolicy
from streamguard.tencentcloud.signing import Credentials

__all__ = ["client_from_config", "credentials_from_config", "tencent_credentials"]


def credentials_from_config(config: AmsEngineConfig) -> Credentials:
    """The AMS credentials, or a ``ConfigError`` naming what is missing."""
    return tencent_credentials("engine", config.secret_id, config.secret_key, config.token)


def tencent_credentials(
    section: str, secret_id: SecretStr | None, secret_key: SecretStr | None, token: SecretStr | None
) -> Credentials:
    """A Tencent Cloud account's credentials from a config section (AMS's ``engine``,
    IMS's ``image_engine``), or a ``ConfigError`` naming what is missing."""
    problems = [
        ConfigProblem(f"{section}.{name}", f"missing: set {env} or the credential file")
        for name, env, value in (
            ("secret_id", "$TENCENTCLOUD_SECRET_ID", secret_id),
            ("secret_key", "$TENCENTCLOUD_SECRET_KEY", secret_key),
        )
        if value is None
    ]
    if problems or secret_id is None or secret_key is None:
        raise ConfigError(problems)
    return Credentials(
        secret_id.get_secret_value(),
        secret_key.get_secret_value(),
        token.get_secret_value() if token else None,
    )


def client_from_config(config: AmsEngineConfig) -> AmsClient:
    """An ``AmsClient`` (not yet open) with the config's endpoint, limits and credentials."""
    return AmsClient(
        config.endpoint,
        credentials_from_config(config),
        requests_per_second=config.requests_per_second,
        timeout=aiohttp.ClientTimeout(total=config.request_timeout, connect=config.connect_timeout),
        retry=RetryPolicy(attempts=config.retry_attempts, total_seconds=config.retry_total_seconds),
        region=config.region,
        language=config.language,
    )
