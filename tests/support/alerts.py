"""Keyword hits for the verdicts of ``streamguard.testing.alerts.risky``, used only by tests."""

from __future__ import annotations

from streamguard.core.verdict import KeywordHit

__all__ = ["keyword"]


def keyword(
    word: str, label: str = "Abuse", score: int = 95, library_id: str = "lib-default"
) -> KeywordHit:
    """A keyword hit at the start of the transcript."""
    return KeywordHit(
        keyword=word,
        library_id=library_id,
        library_name=f"{library_id} name",
        label=label,
        sub_label="Insult",
        score=score,
        text_start=0,
        text_end=len(word),
    )
