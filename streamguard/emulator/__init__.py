"""The AMS emulator: speaks AMS 2020-12-29 over HTTP and judges audio with any Engine."""

from streamguard.emulator.app import AmsEmulator, EmulatorOptions, EmulatorStats, create_app
from streamguard.emulator.faults import Faults

__all__ = ["AmsEmulator", "EmulatorOptions", "EmulatorStats", "Faults", "create_app"]
