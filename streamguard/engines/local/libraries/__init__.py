"""Keyword library files shipped with streamguard (package data)."""
