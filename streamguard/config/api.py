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
    viewer_token: SecretStr | None = secret_field(
        "api-viewer-token",
        "STREAMGUARD_API_VIEWER_TOKEN",
        "Optional read-only bearer token: it may read (GET) everything the API token may, "
        "the console included, and change nothing.",
    )
    evidence_url_ttl: float = Field(
        3600.0,
        gt=0,
        le=7 * 86_400,
        description="Seconds a signed evidence URL (the console's audio player) stays valid.",
    )
    allow_local_files: bool = Field(
        False,
        description="Whether streams attached through the API may be local files (file:).",
    )
