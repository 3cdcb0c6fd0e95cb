"""The control API's OpenAPI 3.1 document, with the stream schema taken from the model."""

from __future__ import annotations

from typing import Any

from streamguard.api.image import IMAGE_PATHS
from streamguard.api.schemas import CONSOLE_PATHS, CONSOLE_SCHEMAS
from streamguard.api.text import TEXT_PATH
from streamguard.config.streams import StreamConfig
from streamguard.core.status import StreamState
from streamguard.streams.placement import Where

__all__ = ["OPENAPI"]

_ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "string"},
                "message": {"type": "string"},
                "details": {},
            },
        }
    },
}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


_ERR = {"$ref": "#/components/schemas/Error"}
_UNUSABLE = (
    "the daemon will not run this stream: protocol_not_allowed, address_not_allowed (the host "
    "is an IP address the address policy denies), unknown_profile or invalid_source"
)
_STATUS = {"$ref": "#/components/schemas/PlacedStream"}
_STREAM = {"$ref": "#/components/schemas/Stream"}
_CHANGE = {
    "type": "object",
    "required": ["state", "applied_by", "within_seconds", "message"],
    "properties": {
        "state": {"enum": ["pending"]},
        "applied_by": {"type": ["string", "null"], "description": "the owner that applies it"},
        "within_seconds": {"type": ["number", "null"]},
        "message": {"type": "string"},
    },
}
_ID = {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}
_AUTH_ERRORS = {"401": _json(_ERR, "missing or wrong bearer token")}

_COUNT = {"type": ["integer", "null"], "minimum": 0}
_MINUTES = {"type": ["number", "null"], "minimum": 0}
_COUNTS = {"type": ["object", "null"], "additionalProperties": {"type": "integer"}}
_STREAM_STATUS: dict[str, Any] = {
    "type": "object",
    "required": ["id", "state", "last_error"],
    "description": "A stream's config (the Stream fields) and how it is doing; the runtime "
    "fields are null for a stream that does not run on the instance asked",
    "properties": {
        **StreamConfig.model_json_schema()["properties"],
        "state": {"enum": [*(s.value for s in StreamState), None]},
        "last_audio_at": {"type": ["string", "null"], "format": "date-time"},
        "reconnects": _COUNT,
        "failed_attempts": _COUNT,
        "segments": _COUNT,
        "outcomes": _COUNTS,
        "suggestions": _COUNTS,
        "minutes_moderated": _MINUTES,
        "minutes_skipped_silent": _MINUTES,
        "minutes_unjudged": _MINUTES,
        "last_error": {"type": ["string", "null"]},
        "audio_track": {
            "type": ["boolean", "null"],
            "description": "false: the stream has video and no audio (frames only, no "
            "segments); null until a connection told",
        },
    },
}
_PLACEMENT: dict[str, Any] = {
    "type": "object",
    "required": ["placement", "owner", "generation", "lease_until"],
    "properties": {
        "placement": {
            "enum": [w.value for w in Where],
            "description": "here: runs on the instance asked; elsewhere: another instance "
            "holds its lease (ask it for the runtime state); unowned: nobody holds it "
            "(never claimed, released, or its owner's lease expired)",
        },
        "owner": {
            "type": ["string", "null"],
            "description": "the instance holding the stream (for an expired lease, the last)",
        },
        "generation": {"type": ["integer", "null"], "description": "the lease's fence"},
        "lease_until": {"type": ["string", "null"], "format": "date-time"},
    },
}

OPENAPI: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {"title": "streamguard control API", "version": "1"},
    "components": {
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        "schemas": {
            "Error": _ERROR,
            "Stream": StreamConfig.model_json_schema(),
            "StreamStatus": _STREAM_STATUS,
            "StreamPlacement": _PLACEMENT,
            "PendingStreamChange": {
                "allOf": [
                    {"$ref": "#/components/schemas/PlacedStream"},
                    {"type": "object", "required": ["change"], "properties": {"change": _CHANGE}},
                ]
            },
            "PlacedStream": {
                "allOf": [
                    {"$ref": "#/components/schemas/StreamStatus"},
                    {"$ref": "#/components/schemas/StreamPlacement"},
                ]
            },
            **CONSOLE_SCHEMAS,
        },
    },
    "security": [{"bearer": []}],
    "paths": {
        "/healthz": {
            "get": {"security": [], "responses": {"200": {"description": "process is alive"}}}
        },
        "/readyz": {
            "get": {
                "security": [],
                "responses": {
                    "200": {"description": "bus connected and database writable"},
                    "503": {"description": "not ready; the body says which check failed"},
                },
            }
        },
        "/metrics": {
            "get": {"security": [], "responses": {"200": {"description": "Prometheus text"}}}
        },
        "/v1/streams": {
            "get": {
                "responses": {
                    "200": _json(
                        {
                            "type": "object",
                            "required": ["instance", "complete", "streams"],
                            "properties": {
                                "instance": {"type": ["string", "null"]},
                                "complete": {
                                    "type": "boolean",
                                    "description": "false: the fleet's database is away, "
                                    "only the streams running on this instance are listed",
                                },
                                "streams": {"type": "array", "items": _STATUS},
                            },
                        },
                        "every stream's status; in fleet mode every stream of the fleet, "
                        "each with its owner",
                    )
                }
            },
            "post": {
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _STREAM}},
                },
                "responses": {
                    "201": _json(_STATUS, "attached"),
                    "400": _json(_ERR, "malformed body; details name each field"),
                    "409": _json(_ERR, "a stream with this id is attached"),
                    "422": _json(_ERR, _UNUSABLE),
                    **_AUTH_ERRORS,
                },
            },
        },
        "/v1/streams/{id}": {
            "parameters": [_ID],
            "get": {"responses": {"200": _json(_STATUS, "status"), "404": _json(_ERR, "none")}},
            "patch": {
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": {"type": "object"}}},
                },
                "responses": {
                    "200": _json(_STATUS, "changed (the stream restarts if its source changed)"),
                    "400": _json(_ERR, "malformed body"),
                    "404": _json(_ERR, "no such stream"),
                    "202": _json(
                        {"$ref": "#/components/schemas/PendingStreamChange"},
                        "fleet mode, a stream that runs on another instance or on none now: "
                        "the change is kept in the shared desired set; its owner applies it "
                        "at its next lease turn (or whoever claims it next)",
                    ),
                    "409": _json(
                        _ERR,
                        "configured_in_file: change it in the file and reload; conflict (fleet"
                        " mode): the stream was changed since it was read, read it and retry",
                    ),
                    "422": _json(_ERR, _UNUSABLE),
                    **_AUTH_ERRORS,
                },
            },
            "delete": {
                "responses": {
                    "204": {"description": "detached; its tail was judged"},
                    "404": _json(_ERR, "none"),
                }
            },
        },
        "/v1/results": {
            "get": {
                "parameters": [
                    {"name": n, "in": "query", "schema": {"type": "string"}}
                    for n in (
                        "stream",
                        "room",
                        "data_id",
                        "label",
                        "min_risk",
                        "since",
                        "until",
                        "q",
                        "limit",
                        "order",
                        "cursor",
                    )
                ],
                "responses": {
                    "200": _json(
                        {
                            "type": "object",
                            "required": ["results", "next_cursor"],
                            "properties": {
                                "results": {
                                    "type": "array",
                                    "items": {"$ref": "#/components/schemas/Result"},
                                },
                                "next_cursor": {"type": ["string", "null"]},
                            },
                        },
                        "results (order=oldest|newest); next_cursor: the next page's cursor=",
                    ),
                    "400": _json(_ERR, "bad query"),
                },
            }
        },
        "/v1/feedback": {
            "post": {
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["kind"],
                                "properties": {
                                    "kind": {"enum": ["confirmed", "false_positive", "missed"]},
                                    "alert_id": {"type": "string"},
                                    "incident_id": {"type": "string"},
                                    "segment_id": {"type": "string"},
                                    "frame_id": {
                                        "type": "string",
                                        "description": "a video frame's result",
                                    },
                                    "label": {"type": "string"},
                                    "note": {"type": "string"},
                                },
                                "additionalProperties": False,
                            }
                        }
                    },
                },
                "responses": {
                    "201": _json({"$ref": "#/components/schemas/FeedbackEntry"}, "stored"),
                    "400": _json(_ERR, "invalid"),
                },
            },
            "get": {
                "responses": {
                    "200": _json(
                        {"$ref": "#/components/schemas/FeedbackSummary"},
                        "counts by kind and label, and the latest entries",
                    )
                }
            },
        },
        "/v1/moderate/text": TEXT_PATH,
        **CONSOLE_PATHS,
        **IMAGE_PATHS,
    },
}
