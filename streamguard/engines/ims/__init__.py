"""Tencent Cloud IMS as the image engine: pictures to ImageModeration (or async tasks and
their callbacks) and back to our ``Verdict``."""
