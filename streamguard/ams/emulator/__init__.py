"""The AMS emulator: speaks AMS 2020-12-29 over HTTP and judges audio with any Engine."""

from streamguard.ams.emulator.app import AmsEmulator, EmulatorOptions, EmulatorStats, create_app
from streamguard.ams.emulator.faults import Faults

__all__ = ["AmsEmulator", "EmulatorOptions", "EmulatorStats", "Faults", "create_app"]
