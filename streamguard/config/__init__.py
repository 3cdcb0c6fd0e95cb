"""Configuration: a TOML file validated into pydantic models."""

from streamguard.config.loading import load_config, parse_config
from streamguard.config.model import Config

__all__ = ["Config", "load_config", "parse_config"]
