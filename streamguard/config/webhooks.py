"""Webhook destinations: alerts POSTed to HTTP receivers, signed with a shared secret."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, SecretStr, ValidationInfo, field_validator, model_validator

from streamguard.config.base import Section, read_secret
from streamguard.config.ingest import BackoffConfig

__all__ = ["WebhookConfig", "check_webhooks", "webhook_secret_names"]

RiskName = Literal["low", "medium", "high"]


def webhook_secret_names(name: str) -> tuple[str, str]:
    """The credential file and the environment variable holding webhook ``name``'s secret."""
    return f"webhook-{name}-secret", f"STREAMGUARD_WEBHOOK_{name.upper().replace('-', '_')}_SECRET"


class WebhookConfig(Section):
    """One ``[[webhooks]]`` destination: every alert (or those matching the filter) is POSTed
    to ``url`` in order, at least once, signed with the destination's secret."""

    name: str = Field(
        pattern=r"^[a-z0-9][a-z0-9-]{0,62}$",
        description="Names the destination in logs, metrics and its secret's credential "
        "(lower-case letters, digits, '-').",
    )
    url: str = Field(description="The receiver's URL (http or https).")
    secret: SecretStr | None = Field(
        None,
        description="HMAC-SHA256 key of the signature. Read from "
        "$CREDENTIALS_DIRECTORY/webhook-<name>-secret or $STREAMGUARD_WEBHOOK_<NAME>_SECRET "
        "(name upper-cased, '-' as '_'); required.",
        exclude=True,
    )
    labels: list[str] = Field(
        default_factory=list, description="Only alerts with one of these labels; empty = all."
    )
    min_risk: RiskName = Field("low", description="Only alerts at least this risky.")
    timeout: float = Field(10.0, gt=0, le=300, description="Seconds to wait for an answer.")
    dead_letter_after_seconds: float = Field(
        86400.0,
        gt=0,
        description="An alert still undelivered this long after it was raised is moved to the "
        "dead letters (outbox_dead_letters, topic webhook:<name>) and the next one goes.",
    )
    retry: BackoffConfig = Field(
        default_factory=BackoffConfig,
        description="Delays between attempts while the receiver fails or is down.",
    )

    @model_validator(mode="before")
    @classmethod
    def _load_secret(cls, data: Any) -> Any:
        if isinstance(data, dict) and "secret" not in data and isinstance(data.get("name"), str):
            credential, env = webhook_secret_names(data["name"])
            return {**data, "secret": read_secret(credential, env)}
        return data

    @field_validator("url")
    @classmethod
    def _http(cls, url: str) -> str:
        if not url.startswith(("http://", "https://")) or len(url) < len("http://x"):
            raise ValueError("must be an http:// or https:// URL")
        return url

    @model_validator(mode="after")
    def _has_secret(self) -> WebhookConfig:
        if self.secret is None or not self.secret.get_secret_value():
            credential, env = webhook_secret_names(self.name)
            raise ValueError(
                f"webhook {self.name!r} has no secret: put it in "
                f"$CREDENTIALS_DIRECTORY/{credential} or ${env}"
            )
        return self


def check_webhooks(
    cls: type, webhooks: list[WebhookConfig], info: ValidationInfo
) -> list[WebhookConfig]:
    """Names are unique, and the outbox that feeds webhooks exists (``[mqtt]`` is set)."""
    if webhooks and info.data.get("mqtt") is None:
        raise ValueError("webhooks are fed from the MQTT outbox: configure [mqtt] too")
    seen: set[str] = set()
    for index, webhook in enumerate(webhooks):
        if webhook.name in seen:
            raise ValueError(f"[{index}].name {webhook.name!r} is used by another webhook")
        seen.add(webhook.name)
    return webhooks
