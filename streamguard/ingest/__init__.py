"""Ingest: sources (PyAV), the segmenter and the encoder."""
