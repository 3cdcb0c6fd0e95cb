"""The IMS emulator's answers: what the rule saw, in ImageModeration's shape (IMS spec §3.1).

``ImsFaults.arrays`` switches every result array to ``[]``, ``null`` or absent, so that
clients meet each form the service's SDK allows.
"""

from __future__ import annotations

import hashlib
from typing import Any, Literal

from streamguard.emulator.ims_images import Sighting

__all__ = ["ArrayForm", "moderation_answer"]

ArrayForm = Literal["list", "empty", "null", "absent"]
"""How result arrays are sent: as they are, always ``[]``, ``null``, or left out."""
_ARRAYS = ("LabelResults", "ObjectResults", "OcrResults", "LibResults", "RecognitionResults")


def _location() -> dict[str, float]:
    return {"X": 0.0, "Y": 0.0, "Width": 0.0, "Height": 0.0, "Rotate": 0.0}


def _label_result(sighting: Sighting) -> dict[str, Any]:
    marker = sighting.marker
    return {
        "Scene": marker.scene,
        "Suggestion": marker.suggestion,
        "Label": marker.label,
        "SubLabel": marker.sub_label,
        "Score": marker.score,
        "Details": [{"Id": 0, "Name": marker.sub_label, "Score": marker.score}],
    }


def _object_result(sighting: Sighting) -> dict[str, Any]:
    marker = sighting.marker
    detail = {
        "Id": 0,
        "Name": "QRCODE",
        "Value": "https://example.com/ad",
        "Score": marker.score,
        "Location": _location(),
        "SubLabel": marker.sub_label,
        "ObjectId": "",
    }
    return {
        "Scene": marker.scene,
        "Suggestion": marker.suggestion,
        "Label": marker.label,
        "SubLabel": marker.sub_label,
        "Score": marker.score,
        "Names": ["QRCODE"],
        "Details": [detail],
    }


def moderation_answer(
    sightings: list[Sighting],
    *,
    data_id: str,
    biz_type: str,
    image: bytes,
    arrays: ArrayForm = "list",
) -> dict[str, Any]:
    """The ImageModeration answer (without RequestId) for what the rule saw in ``image``."""
    top = sightings[0].marker if sightings else None
    answer: dict[str, Any] = {
        "Suggestion": top.suggestion if top else "Pass",
        "Label": top.label if top else "Normal",
        "SubLabel": top.sub_label if top else "",
        "Score": top.score if top else 0,
        "LabelResults": [_label_result(s) for s in sightings if not s.marker.detected_object],
        "ObjectResults": [_object_result(s) for s in sightings if s.marker.detected_object],
        "OcrResults": [],
        "LibResults": [],
        "RecognitionResults": [
            {"Label": "Scene", "Tags": [{"Name": "Colour", "Score": 30, "Location": _location()}]}
        ],
        "DataId": data_id,
        "BizType": biz_type,
        "Extra": "",
        "FileMD5": hashlib.md5(image, usedforsecurity=False).hexdigest(),
    }
    for key in _ARRAYS:
        if arrays == "empty":
            answer[key] = []
        elif arrays == "null":
            answer[key] = None
        elif arrays == "absent":
            del answer[key]
    return answer
