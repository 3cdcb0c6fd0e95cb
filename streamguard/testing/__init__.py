"""Real test peers and fakes at our own seams, shared by the tests and the benchmarks.

A real mosquitto broker (``broker``), an Icecast-like live server (``media_servers``),
loopback ports (``net``), a deterministic engine fake (``engines``) and builders of the
inputs alerting consumes with a recording sink (``alerts``), a webhook receiver that checks
signatures (``webhooks``). Pieces only the tests use stay
in ``tests/support``.

The daemon does not use this module: nothing else in ``streamguard`` imports it
(``tests/test_testing_module.py`` checks that). It is the top layer, so it may import any
other.
"""
