"""The AMS account a config names: its credentials, and the client that signs with them."""

from __future__ import annotations

import aiohttp

from streamguard.config.engine import AmsEngineConfig
from streamguard.core.errors import ConfigError, ConfigProblem
from streamguard.tencentcloud.client import AmsClient, RetryPolicy
from streamguard.tencentcloud.signing import Credentials

__all__ = ["client_from_config", "credentials_from_config"]


def credentials_from_config(config: AmsEngineConfig) -> Credentials:
    """The AMS credentials, or a ``ConfigError`` naming what is missing."""
    problems = [
        ConfigProblem(f"engine.{name}", f"missing: set {env} or the credential file")
        for name, env, value in (
            ("secret_id", "$TENCENTCLOUD_SECRET_ID", config.secret_id),
            ("secret_key", "$TENCENTCLOUD_SECRET_KEY", config.secret_key),
        )
        if value is None
    ]
    if problems:
        raise ConfigError(problems)
    assert config.secret_id is not None
    assert config.secret_key is not None
    return Credentials(
        config.secret_id.get_secret_value(),
        config.secret_key.get_secret_value(),
        config.token.get_secret_value() if config.token else None,
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
