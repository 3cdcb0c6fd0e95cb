"""OpenAPI schemas and paths of the incident, evidence, room, search, usage and try-it routes.

The shapes are those the handlers answer with (``state.incidents``, ``state.feedback``,
``api.incidents``); the usage and try-it ones are generated from the pydantic models their
handlers build (``api.usage``, ``api.try_it``, ``api.try_run``). ``tests/api`` validates real
answers against them.
"""

from __future__ import annotations

from typing import Any

from pydantic.json_schema import models_json_schema

from streamguard.api.try_it import TryOptions, TryUrl
from streamguard.api.try_run import TryReport
from streamguard.api.usage import UsageReport
from streamguard.state.usage import USAGE_COLUMNS

__all__ = ["CONSOLE_PATHS", "CONSOLE_SCHEMAS"]

_RISK = {"enum": ["none", "low", "medium", "high"]}
_TIME = {"type": "string", "format": "date-time"}
_STR = {"type": "string"}
_ERR = {"$ref": "#/components/schemas/Error"}
_FEEDBACK_COUNTS = {
    "type": "object",
    "description": "by kind, then label",
    "additionalProperties": {"type": "object", "additionalProperties": {"type": "integer"}},
}


def _obj(required: dict[str, Any], **optional: Any) -> dict[str, Any]:
    return {
        "type": "object",
        "required": list(required),
        "properties": {**required, **optional},
    }


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


CONSOLE_SCHEMAS: dict[str, Any] = {
    "Incident": _obj(
        {
            "id": _STR,
            "room_id": _STR,
            "stream_id": _STR,
            "label": _STR,
            "peak_risk": _RISK,
            "started_at": _TIME,
            "last_segment_at": _TIME,
            "ended_at": {"type": ["string", "null"], "format": "date-time"},
            "state": {"enum": ["open", "ended"]},
            "segments": {"type": "integer", "minimum": 1},
        }
    ),
    "IncidentSegment": _obj(
        {
            "segment": {"type": "object"},
            "risk": _obj({"level": _RISK, "label": _STR, "score": {"type": "integer"}}),
            "keywords": {"type": "array", "items": {"type": "object"}},
            "verdict": _obj({"text": _STR, "keywords": {"type": "array"}}),
            "evidence": {
                "oneOf": [
                    {"type": "null"},
                    _obj(
                        {"sha256": _STR, "bytes": {"type": "integer"}},
                        url={"type": "string", "description": "signed; plays without a token"},
                        media_type={
                            "type": "string",
                            "description": "audio/* for a clip, image/jpeg for a video frame",
                        },
                    ),
                ]
            },
        }
    ),
    "FeedbackEntry": _obj(
        {
            "id": _STR,
            "kind": {"enum": ["confirmed", "false_positive", "missed"]},
            "target_type": {"enum": ["alert_id", "incident_id", "segment_id", "frame_id"]},
            "target_id": _STR,
            "label": _STR,
            "note": _STR,
            "created_at": _TIME,
        }
    ),
    "FeedbackSummary": _obj(
        {
            "counts": _FEEDBACK_COUNTS,
            "frames": {**_FEEDBACK_COUNTS, "description": "on video frames (frame_id)"},
            "audio": {**_FEEDBACK_COUNTS, "description": "on everything else"},
            "entries": {"type": "array", "items": _ref("FeedbackEntry")},
        }
    ),
    "IncidentDetail": _obj(
        {
            "incident": _ref("Incident"),
            "segments": {"type": "array", "items": _ref("IncidentSegment")},
            "alerts": {"type": "array", "items": {"type": "object", "description": "alert v1"}},
            "feedback": {"type": "array", "items": _ref("FeedbackEntry")},
        }
    ),
    "Room": {
        "allOf": [
            _ref("PlacedStream"),
            _obj(
                {
                    "last_result": {"type": ["object", "null"]},
                    "open_incidents": {"type": "integer", "minimum": 0},
                }
            ),
        ]
    },
}

_MODELS = models_json_schema(
    [(UsageReport, "serialization"), (TryReport, "serialization"), (TryUrl, "validation")],
    ref_template="#/components/schemas/{model}",
)[1]["$defs"]

CONSOLE_SCHEMAS |= {
    **_MODELS,
    "Result": _obj(
        {
            "segment": {"type": "object", "description": "the segment's metadata"},
            "verdict": _obj({"outcome": _STR, "label": _STR, "text": _STR}),
            "risk": _RISK,
            "room_id": _STR,
            "incident_id": {"type": ["string", "null"], "description": "when it alerted"},
            "cursor": {"type": "string", "description": "pass as cursor= for what follows"},
        }
    ),
}

_QUERY = [
    {"name": n, "in": "query", "schema": {"type": "string"}}
    for n in ("room", "label", "risk", "min_risk", "state", "since", "until", "limit")
]

_OPTIONS = TryOptions.model_json_schema()
_UPLOAD = {
    "multipart/form-data": {
        "schema": {
            **_OPTIONS,
            "required": ["file"],
            "properties": {
                "file": {"type": "string", "format": "binary", "description": "the audio"},
                **_OPTIONS["properties"],
            },
        }
    }
}

CONSOLE_PATHS: dict[str, Any] = {
    "/v1/incidents": {
        "get": {
            "parameters": _QUERY,
            "responses": {
                "200": _json(
                    _obj({"incidents": {"type": "array", "items": _ref("Incident")}}),
                    "incidents, newest first",
                ),
                "400": _json(_ERR, "bad query"),
            },
        }
    },
    "/v1/incidents/{id}": {
        "parameters": [{"name": "id", "in": "path", "required": True, "schema": _STR}],
        "get": {
            "responses": {
                "200": _json(_ref("IncidentDetail"), "the incident, its segments and alerts"),
                "404": _json(_ERR, "no such incident"),
            }
        },
    },
    "/v1/evidence/{segment_id}": {
        "parameters": [
            {"name": "segment_id", "in": "path", "required": True, "schema": _STR},
            {"name": "expires", "in": "query", "schema": _STR},
            {"name": "sig", "in": "query", "schema": _STR},
        ],
        "get": {
            "description": "The evidence clip; Range requests are answered with 206. With "
            "a signed URL (expires, sig) no token is needed.",
            "responses": {
                "200": {
                    "description": "the clip (a video frame's: a JPEG)",
                    "content": {"audio/*": {}, "image/jpeg": {}},
                },
                "206": {"description": "part of the clip", "content": {"audio/*": {}}},
                "403": _json(_ERR, "the signature is wrong or expired"),
                "404": _json(_ERR, "no evidence kept for this segment"),
                "410": _json(_ERR, "deleted by evidence retention"),
            },
        },
    },
    "/v1/rooms": {
        "get": {
            "responses": {
                "200": _json(
                    _obj(
                        {"rooms": {"type": "array", "items": _ref("Room")}},
                        instance={"type": ["string", "null"], "description": "who answered"},
                        complete={
                            "type": "boolean",
                            "description": "false: the fleet's database is away, only the "
                            "rooms running on this instance are listed",
                        },
                    ),
                    "every room of the fleet with its placement (runtime fields live only "
                    "where it runs here), last result and open incidents",
                )
            }
        }
    },
    "/v1/whoami": {
        "get": {
            "responses": {
                "200": _json(_obj({"role": {"enum": ["operator", "viewer"]}}), "the caller")
            }
        }
    },
    **{
        path: {
            "post": {
                "description": "Judge a recording once with the configured engine and "
                "answer each segment's verdict; nothing is stored or alerted. The viewer "
                "token may not (403 read_only).",
                "requestBody": {"required": True, "content": body},
                "responses": {
                    "200": _json(_ref("TryReport"), "each segment's verdict and risk"),
                    "400": _json(_ERR, "malformed form or body; details name the field"),
                    "403": _json(_ERR, "the viewer token may only read"),
                    "413": _json(_ERR, "the file is larger than the limit"),
                    "415": _json(_ERR, "not multipart/form-data"),
                    "422": _json(_ERR, "no audio in it, or a URL POST /v1/streams refuses"),
                    "429": _json(_ERR, "another try is running (Retry-After)"),
                    "501": _json(_ERR, "not with the AMS engine (for now)"),
                    "503": _json(_ERR, "the daemon is shutting down"),
                },
            }
        }
        for path, body in (
            ("/v1/moderate/file", _UPLOAD),
            ("/v1/moderate/url", {"application/json": {"schema": _ref("TryUrl")}}),
        )
    },
    "/v1/usage": {
        "get": {
            "parameters": [
                {"name": "from", "in": "query", "schema": {"type": "string", "format": "date"}},
                {"name": "to", "in": "query", "schema": {"type": "string", "format": "date"}},
                {"name": "format", "in": "query", "schema": {"enum": ["json", "csv"]}},
            ],
            "responses": {
                "200": {
                    "description": "minutes per UTC day and label; CSV columns: "
                    + ", ".join(USAGE_COLUMNS),
                    "content": {
                        "application/json": {"schema": _ref("UsageReport")},
                        "text/csv": {"schema": {"type": "string"}},
                    },
                },
                "400": _json(_ERR, "bad query"),
            },
        }
    },
}
