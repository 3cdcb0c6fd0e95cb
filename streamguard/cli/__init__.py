"""The ``streamguard`` command line: one module per subcommand, each with ``register``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from streamguard.cli import check_config, emulator, ims_emulator, moderate, moderate_text, run, tail

__all__ = ["main"]

COMMANDS = (check_config, moderate, moderate_text, run, tail, emulator, ims_emulator)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="streamguard", description="Streaming audio moderation daemon."
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.register(subparsers)
    args = parser.parse_args(argv)
    code: int = args.run(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
