"""The control API an operator or platform backend attaches rooms through."""

from __future__ import annotations

from pydantic import Field, SecretStr

from streamguard.config.base import Section, secret_field

__all__ = ["ApiConfig"]


class ApiConfig(Section):
    host: str = Field("127.0.0.1", description="Address the control API listens on.")
    port: int = Field(8080, ge=0, le=65535, description="Port of the control API (0 = any free).")
    token: SecretStr | None = secret_field(
        "api-token",
        "STREAMGUARD_API_TOKEN",
        "Bearer token every API call must carry (health and metrics excepted); "
        "without one the API refuses every stream operation.",
    )
    allow_local_files: bool = Field(
        False,
        description="Whether streams attached through the API may be local files (file:).",
    )
