"""Where the state lives: the embedded SQLite file (default) or a shared PostgreSQL (fleet
mode), and how the fleet shares its streams."""

from __future__ import annotations

from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator

from streamguard.config.base import Section, secret_field

__all__ = ["POSTGRES_SCHEMES", "StateConfig"]

POSTGRES_SCHEMES = ("postgresql", "postgres")


class StateConfig(Section):
    url: str | None = Field(
        None,
        description=(
            "The state database. Unset: SQLite at <instance.state_dir>/streamguard.db (one "
            "machine). 'sqlite:///PATH' (absolute PATH) or 'sqlite:PATH' (relative to "
            "state_dir) names another SQLite file; 'postgresql://USER@HOST:PORT/DB' is fleet "
            "mode: every instance on that database shares the streams, results and alerts. "
            "No password in the URL: see password."
        ),
    )
    password: SecretStr | None = secret_field(
        "state-password",
        "STREAMGUARD_STATE_PASSWORD",
        "Password of the PostgreSQL user of url (fleet mode).",
    )
    lease_seconds: float = Field(
        15.0,
        ge=3,
        le=600,
        description=(
            "Fleet mode: how long a stream's lease lasts without renewal; a dead instance's "
            "streams are taken over this long after its last renewal."
        ),
    )
    capacity: int | None = Field(
        None,
        ge=0,
        description=(
            "Fleet mode: the most streams this instance runs (unset: no limit beyond its "
            "even share of the fleet's streams)."
        ),
    )

    write_batch_seconds: float = Field(
        0.5,
        ge=0,
        le=5,
        description=(
            "Fleet mode: the writes of this instance's segments (result, incident, alert) "
            "that arrive within this many seconds are written in one transaction, to spare "
            "the database; an alert reaches the outbox up to this much later. 0: each "
            "segment's writes in a transaction of their own, at once."
        ),
    )

    @field_validator("url")
    @classmethod
    def _known_scheme(cls, url: str | None) -> str | None:
        if url is None:
            return None
        parts = urlsplit(url)
        if parts.scheme == "sqlite":
            if not (parts.path or parts.netloc):
                raise ValueError("a sqlite URL needs a path: 'sqlite:///abs/path.db'")
            return url
        if parts.scheme not in POSTGRES_SCHEMES:
            raise ValueError(
                f"unknown scheme {parts.scheme!r}: use 'sqlite:///PATH' or 'postgresql://…'"
            )
        if parts.password:
            raise ValueError(
                "a password in the URL is not read from the config file: give it as the "
                "state-password credential or $STREAMGUARD_STATE_PASSWORD"
            )
        if not parts.hostname or not parts.path.strip("/"):
            raise ValueError("a postgresql URL needs a host and a database name")
        return url

    @model_validator(mode="after")
    def _capacity_only_in_fleet(self) -> StateConfig:
        if self.capacity is not None and not self.fleet:
            raise ValueError("capacity applies to fleet mode only (a postgresql url)")
        return self

    @property
    def fleet(self) -> bool:
        """True when the state is a shared PostgreSQL."""
        return self.url is not None and urlsplit(self.url).scheme in POSTGRES_SCHEMES
