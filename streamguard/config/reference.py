"""Render the commented example config from the models, so every key is documented once.

``python -m streamguard.config.reference > config/streamguard.example.toml`` regenerates the
shipped example; a test fails when the models and the file disagree.
"""

from __future__ import annotations

import json
import sys
import types
import typing
from pathlib import Path
from typing import Any, Union, get_args, get_origin

from pydantic import BaseModel, SecretStr
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from streamguard.config.model import Config

__all__ = ["render_reference"]

HEADER = """\
# streamguard configuration: every key, its meaning and its default.
# Generated from the config models by `python -m streamguard.config.reference`; do not edit
# by hand. Keys that are commented out are optional; uncomment to change them.
# Secrets are never read from this file: see the notes at each secret key.
"""

# Example values for keys without a default, so the example file validates as shipped.
EXAMPLES: dict[str, Any] = {
    "streams.id": "lobby",
    "streams.url": "https://radio.example.com/live.mp3",
    "mqtt.host": "127.0.0.1",
    "webhooks.name": "ops",
    "webhooks.url": "https://hooks.example.com/streamguard",
    "profiles.default.image_libraries.id": "banned-logos",
    "profiles.default.image_libraries.action": "block",
}

# Lists of tables shown commented out: the example would not validate with them (a webhook
# needs [mqtt] and a secret).
COMMENTED_LISTS = {"webhooks"}

# Lists of tables shown as a commented-out example: any entry would change behaviour.
EXAMPLE_ONLY_LISTS = {"image_libraries"}


# The example key shown for tables keyed by name.
DICT_KEYS = {"profiles": "default", "labels": "Abuse", "image_labels": "Porn"}


def render_reference() -> str:
    lines = [HEADER]
    _render_model(Config, "", lines, commented=False)
    return "\n".join(lines).rstrip() + "\n"


def _render_model(model: type[BaseModel], path: str, out: list[str], *, commented: bool) -> None:
    """Scalars first (TOML needs them before sub-tables), then each sub-table."""
    tables: list[tuple[str, FieldInfo]] = []
    for name, field in model.model_fields.items():
        if _submodels(field.annotation) and not _is_scalar_list(field.annotation):
            tables.append((name, field))
            continue
        _render_scalar(name, field, f"{path}.{name}".lstrip("."), out, commented=commented)
    for name, field in tables:
        _render_table(name, field, f"{path}.{name}".lstrip("."), out, commented=commented)


def _render_scalar(
    name: str, field: FieldInfo, path: str, out: list[str], *, commented: bool
) -> None:
    for line in _wrap(field.description or ""):
        out.append(f"# {line}")
    if field.exclude:  # a secret: documented, never written
        out.append(f"# ({name} is a secret and cannot be set here)")
        out.append("")
        return
    if field.is_required():  # no default: say so, or a commented example reads as one
        out.append("# Required (no default); the value shown is an example.")
    if field.is_required() or name == "type":  # `type` picks the model: always written
        value = EXAMPLES[path] if field.is_required() else field.default
        prefix = "# " if commented else ""
    else:
        value = _default(field)
        prefix = "# "
    out.append(f"{prefix}{name} = {_toml(value)}" if value is not None else f"# {name} =")
    out.append("")


def _render_table(
    name: str, field: FieldInfo, path: str, out: list[str], *, commented: bool
) -> None:
    annotation = field.annotation
    origin = get_origin(annotation)
    models = _submodels(annotation)
    optional = type(None) in get_args(annotation) or path in COMMENTED_LISTS
    hash_ = "# " if commented or optional else ""
    out.append(f"# --- {path}: {field.description or ''}")
    if origin is list:
        example_only = path.rsplit(".", 1)[-1] in EXAMPLE_ONLY_LISTS
        hash_ = "# " if example_only else hash_
        out.append(f"{hash_}[[{path}]]")
        _render_model(models[0], path, out, commented=commented or optional or example_only)
    elif origin is dict:
        key = DICT_KEYS.get(path.rsplit(".", 1)[-1], "default")
        out.append(f"{hash_}[{path}.{key}]")
        _render_model(models[0], f"{path}.{key}", out, commented=commented or optional)
    elif len(models) > 1 and not optional:  # a union chosen by `type`
        default = _default(field)
        chosen = type(default)
        out.append(f"{hash_}[{path}]")
        _render_model(chosen, path, out, commented=commented)
        for other in models:
            if other is not chosen:
                kind = other.model_fields["type"].default
                out.append(f"# --- or, with type = {kind!r}:")
                out.append(f"# [{path}]")
                _render_model(other, path, out, commented=True)
    else:
        out.append(f"{hash_}[{path}]")
        _render_model(models[0], path, out, commented=commented or optional)


def _submodels(annotation: Any) -> list[type[BaseModel]]:
    found: list[type[BaseModel]] = []
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    origin = get_origin(annotation)
    if origin in (Union, types.UnionType, list, dict, typing.Annotated):
        for arg in get_args(annotation):
            found.extend(_submodels(arg))
    return found


def _is_scalar_list(annotation: Any) -> bool:
    return get_origin(annotation) is list and not _submodels(get_args(annotation)[0])


def _default(field: FieldInfo) -> Any:
    if field.default_factory is not None:
        return field.default_factory()  # type: ignore[call-arg]
    return None if field.default is PydanticUndefined else field.default


def _toml(value: Any) -> str:
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json")
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str | Path):
        return json.dumps(str(value))
    if isinstance(value, SecretStr):
        return '""'
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + " }"
    return json.dumps(str(value))


def _wrap(text: str, width: int = 90) -> list[str]:
    words, lines, line = text.split(), [], ""
    for word in words:
        if line and len(line) + len(word) + 1 > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    if line:
        lines.append(line)
    return lines


if __name__ == "__main__":
    sys.stdout.write(render_reference())
