"""The languages AMS heard (``LanguageResults``) and whether it can judge them.

AMS's recognition is built for Chinese (its FAQ: only Chinese audio is supported). A slice
in which it heard another language is speech it did not follow: its Pass says nothing about
what was said, so the verdict lists it in ``unsupported`` (like the local engine's
"non-English speech (xx)") and is never a Pass. Language labels are free text on the wire
(``cmn`` today; ``Mandarin``, ``English``, ``Other`` in older docs); they are compared
case-insensitively, and ``zh-…`` tags count as Chinese.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass

from streamguard.tencentcloud.models import AudioSegment, LanguageResult

__all__ = ["CHINESE", "Heard", "heard_languages", "in_slices", "supported"]

CHINESE = ("zh", "cmn", "chi", "zho", "chinese", "mandarin")
"""Language labels AMS judges by default (``supported_languages`` in the config)."""


@dataclass(frozen=True, slots=True)
class Heard:
    """What AMS said about the languages of a task's slices."""

    languages: tuple[str, ...]
    """Every language label heard, in order of first appearance."""
    unsupported: tuple[str, ...]
    """Those AMS cannot judge."""

    @property
    def complaint(self) -> str:
        """The ``unsupported`` entry of a verdict ("" when every language is supported)."""
        if not self.unsupported:
            return ""
        return f"speech not in Chinese ({', '.join(self.unsupported)})"


def supported(label: str, languages: Collection[str] = CHINESE) -> bool:
    """Whether AMS judges speech in ``label`` (a blank label is no detection at all)."""
    lowered = label.strip().lower()
    if not lowered:
        return True
    wanted = {language.strip().lower() for language in languages}
    return lowered in wanted or lowered.split("-", 1)[0] in wanted


def in_slices(slices: Iterable[AudioSegment]) -> list[LanguageResult]:
    """Every ``LanguageResults`` entry of ``slices``."""
    return [r for p in slices if p.result is not None for r in p.result.language_results]


def heard_languages(
    results: Iterable[LanguageResult], languages: Collection[str] = CHINESE
) -> Heard:
    """The languages ``results`` name, and those AMS cannot judge."""
    heard = tuple(dict.fromkeys(r.label.strip() for r in results if r.label.strip()))
    return Heard(heard, tuple(label for label in heard if not supported(label, languages)))
