"""Shared building blocks of the config models: strict models and secrets."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from streamguard.core.errors import ConfigError, ConfigProblem

__all__ = ["MAX_SECRET_BYTES", "Section", "read_secret", "secret_field"]

MAX_SECRET_BYTES = 64 * 1024
"""A credential file larger than this is refused (keys and tokens are a few hundred bytes)."""


class Section(BaseModel):
    """A config section: unknown keys are errors, values are validated on assignment too."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)

    @model_validator(mode="before")
    @classmethod
    def _no_secrets_in_the_file(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for name, field in cls.model_fields.items():
                # A plain string is what a file gives; code passes SecretStr on purpose.
                if field.exclude and isinstance(data.get(name), str):
                    raise ValueError(
                        f"{name} is a secret and is not read from the config file: "
                        f"{field.description}"
                    )
        return data


def read_secret(credential: str, env: str) -> SecretStr | None:
    """A secret from ``$CREDENTIALS_DIRECTORY/<credential>`` (systemd) or else ``$<env>``."""
    directory = os.environ.get("CREDENTIALS_DIRECTORY")
    if directory:
        path = Path(directory) / credential
        if path.is_file():
            return SecretStr(_read_credential(path))
    value = os.environ.get(env)
    return SecretStr(value.strip()) if value else None


def _read_credential(path: Path) -> str:
    """A credential file's text; ``ConfigError`` (never its content) when it is unusable."""
    try:
        with path.open("rb") as file:
            raw = file.read(MAX_SECRET_BYTES + 1)
    except OSError as exc:
        raise ConfigError([ConfigProblem(str(path), f"cannot read: {exc.strerror}")]) from exc
    if len(raw) > MAX_SECRET_BYTES:
        reason = f"is larger than {MAX_SECRET_BYTES} bytes"
        raise ConfigError([ConfigProblem(str(path), reason)])
    try:
        return raw.decode("utf-8").strip()
    except UnicodeDecodeError as exc:
        # The position only: the bytes around it are part of the secret.
        reason = f"not UTF-8 (invalid byte at offset {exc.start})"
        raise ConfigError([ConfigProblem(str(path), reason)]) from None


def secret_field(credential: str, env: str, description: str) -> Any:
    """A secret read from the credentials directory or the environment, never from the file."""
    return Field(
        default_factory=lambda: read_secret(credential, env),
        description=f"{description} Read from $CREDENTIALS_DIRECTORY/{credential} or ${env}.",
        exclude=True,
    )
