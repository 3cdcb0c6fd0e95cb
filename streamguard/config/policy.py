"""Policy profiles: which verdicts become alerts, and how incidents are grouped.

In the spirit of the moderation consoles (Alibaba Image Moderation 2.0): each label has a
medium and a high score threshold; a label that was hit below its medium threshold is low
risk; the riskiest label wins; a custom-library hit is high; nothing hit is no risk.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from streamguard.config.base import Section

__all__ = ["ImageLibrary", "LabelRule", "ProfileConfig", "RiskName"]

RiskName = Literal["low", "medium", "high"]


class LabelRule(Section):
    """How one label's score maps to a risk level."""

    enabled: bool = Field(True, description="Whether hits of this label count at all.")
    medium: int = Field(
        60, ge=0, le=100, description="Score from which a hit of this label is medium risk."
    )
    high: int = Field(
        90, ge=0, le=100, description="Score from which a hit of this label is high risk."
    )

    @model_validator(mode="after")
    def _ordered(self) -> LabelRule:
        if self.high < self.medium:
            raise ValueError(f"high ({self.high}) must be >= medium ({self.medium})")
        return self


class ImageLibrary(Section):
    """A list of pictures by fingerprint (Alibaba's custom and exempt image libraries): a
    picture within ``distance`` bits of one of them is a library match."""

    id: str = Field(pattern=r"^[A-Za-z0-9_\-]{1,64}$", description="Library id, in reasons.")
    action: Literal["block", "exempt"] = Field(
        description=(
            "block: a match is high risk under label, whatever the engine said; exempt: a "
            "match carries no risk at all (exempt wins over block)."
        )
    )
    label: str = Field("Custom", min_length=1, description="The label a block match gets.")
    fingerprints: list[str] = Field(
        default_factory=list,
        description=(
            "64-bit difference hashes (dHash) as 16 hex digits, as POST /v1/moderate/image "
            "and the frame alerts report them."
        ),
    )
    distance: int = Field(
        4, ge=0, le=32, description="Bits two fingerprints may differ by and still match."
    )

    @field_validator("fingerprints")
    @classmethod
    def _hex(cls, values: list[str]) -> list[str]:
        for n, value in enumerate(values):
            if len(value) != 16 or any(c not in "0123456789abcdef" for c in value):
                raise ValueError(f"[{n}] {value!r} is not 16 lowercase hex digits")
        return values

    def matches(self, fingerprint: int) -> bool:
        """Whether a picture of this fingerprint is in the library."""
        return any(
            (int(known, 16) ^ fingerprint).bit_count() <= self.distance
            for known in self.fingerprints
        )


class ProfileConfig(Section):
    """One policy profile; streams pick one by name."""

    @model_validator(mode="after")
    def _replaced_examples_named(self) -> ProfileConfig:
        if self.replace_default_examples and not self.example_libraries:
            raise ValueError(
                "replace_default_examples = true needs example_libraries (the files that "
                "replace the engine's example libraries)"
            )
        return self

    biz_type: str = Field(
        "default",
        pattern=r"^[A-Za-z0-9_]{3,32}$",
        description="AMS BizType this profile maps to (3-32 of letters, digits, _).",
    )
    labels: dict[str, LabelRule] = Field(
        default_factory=dict,
        description="Rules per engine label (e.g. Porn, Abuse, Ad); others use other_labels.",
    )
    other_labels: LabelRule = Field(
        default_factory=LabelRule, description="Rule for labels not listed in labels."
    )
    image_labels: dict[str, LabelRule] = Field(
        default_factory=dict,
        description="Rules per image label (e.g. Porn) for frames and images; others use "
        "image_other_labels.",
    )
    image_biz_type: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9_]{3,32}$",
        description="IMS BizType (policy) for this profile's frames and images, when IMS judges "
        "them; none = image_engine.biz_type.",
    )
    image_libraries: list[ImageLibrary] = Field(
        default_factory=list,
        description="Custom (block) and exempt image libraries, for frames and API images.",
    )
    image_other_labels: LabelRule = Field(
        default_factory=LabelRule, description="Rule for image labels not listed in image_labels."
    )
    min_risk: RiskName = Field(
        "medium", description="Lowest risk level that opens an incident and alerts."
    )
    custom_libraries: list[str] = Field(
        default_factory=list,
        description="Keyword library ids whose hits are custom-library hits (always high risk),"
        " like hits labelled Custom.",
    )
    example_libraries: list[Path] = Field(
        default_factory=list,
        max_length=20,
        description=(
            "Semantic layer: this profile's own example library files (TOML; harmful "
            "examples per label and benign counter-examples), added to the engine's "
            "example_libraries for text judged under this profile; at most 20 libraries "
            "and 2,000 examples across them, 500 a library, 300 characters an example. "
            "Reloaded on SIGHUP; the profile gets its own fitted classifier."
        ),
    )
    replace_default_examples: bool = Field(
        False,
        description=(
            "true: judge this profile's text with its example_libraries only, not the "
            "engine's (shipped) ones; false: its files add to them."
        ),
    )
    ignored_words: list[str] = Field(
        default_factory=list, description="Keywords whose hits are ignored (case-insensitive)."
    )
    exempt_streams: list[str] = Field(
        default_factory=list, description="Stream ids that never alert."
    )
    exempt_rooms: list[str] = Field(default_factory=list, description="Room ids that never alert.")
    cooldown_seconds: float = Field(
        60.0,
        ge=0,
        description="Per room and label: at most one update alert of an open incident this"
        " often (a rise in risk alerts at once).",
    )
    incident_quiet_seconds: float = Field(
        120.0,
        gt=0,
        description="An incident ends after this many seconds without a risky segment,"
        " also when its stream died.",
    )
