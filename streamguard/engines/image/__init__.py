"""Engines that judge pictures (video frames, images sent to the API)."""
