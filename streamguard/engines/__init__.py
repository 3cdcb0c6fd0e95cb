"""Moderation engines: one interface, local and AMS implementations."""
