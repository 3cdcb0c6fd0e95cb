"""The interface every image engine implements, and what it says of a picture."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from streamguard.core.frame import Picture
from streamguard.core.verdict import Verdict

__all__ = ["ImageEngine"]


@runtime_checkable
class ImageEngine(Protocol):
    """Judges pictures (RGB, height x width x 3), each under the id it is given.

    The answer is a :class:`~streamguard.core.verdict.Verdict` per picture, in order, in the
    shape of the audio's (``segment_id`` is the picture's id): ``label``/``score`` of the
    riskiest label, ``details["scores"]`` with every label the engine scored, and
    ``unsupported`` naming what it cannot judge, so a Pass is never mistaken for "clean" of
    things it never looked for. ``biz_type`` is the IMS BizType of the profile the pictures
    are judged under; engines without such policies ignore it. ``judge`` never raises for a
    picture it could not judge: its verdict's outcome is ``failed`` with a reason. Blocking
    work runs off the event loop.
    """

    name: str
    version: str

    async def judge(
        self, pictures: Sequence[tuple[str, Picture]], *, biz_type: str | None = None
    ) -> list[Verdict]: ...

    async def aclose(self) -> None: ...
