"""``streamguard check-config -c FILE``: print every problem of a config, exit 1 on any.

It checks what ``run`` checks before it is ready, not only the file's shape: each stream's
source against the protocol allow-list (and ``allow_local_files``) and, when its host is an
IP address, against the address policy (``ingest.addresses``), the keyword library
files, with the semantic layer on the example library files of the engine and of each
profile, the AMS credentials, and that the local engine's speech model loads offline. Every
problem of a stream names the stream. ``run`` uses the same checks (``runtime_problems``)
without loading the model, which its engine then loads anyway.
"""

from __future__ import annotations

import argparse
from functools import partial
from pathlib import Path
from typing import Any

from streamguard.cli.common import config_or_report
from streamguard.config import Config
from streamguard.config.engine import AmsEngineConfig, LocalEngineConfig
from streamguard.config.image import ImsImageConfig
from streamguard.core.errors import ConfigError, ConfigProblem, StreamGuardError
from streamguard.engines.ams.credentials import credentials_from_config
from streamguard.engines.ams.live import unpullable
from streamguard.engines.image.factory import ims_credentials
from streamguard.engines.local.keywords import LibrarySet
from streamguard.engines.local.profile_examples import example_problems
from streamguard.engines.local.recognizer import Recognizer
from streamguard.ingest.addresses import POLICY_REFUSAL, AddressNotAllowed
from streamguard.ingest.protocols import resolve_source

__all__ = ["register", "runtime_problems"]


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("check-config", help="validate a config file")
    parser.add_argument("-c", "--config", type=Path, required=True, help="TOML config file")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    config = config_or_report(args.config, also=partial(runtime_problems, load_model=True))
    if config is None:
        return 1
    print(f"{args.config}: OK ({len(config.streams)} stream(s), engine {config.engine.type})")
    return 0


def runtime_problems(config: Config, *, load_model: bool = False) -> list[ConfigProblem]:
    """What ``run`` refuses in a config the models accept: a stream's source off the
    protocol allow-list (a local file while they are not allowed, a URL without a host, a
    host that is an IP address the address policy denies),
    keyword library files that do not load, missing AMS credentials, and (``load_model``) a
    speech model that cannot be loaded offline."""
    problems: list[ConfigProblem] = []
    for index in range(len(config.streams)):
        problems += _source_problems(config, index)
    if isinstance(config.engine, LocalEngineConfig):
        problems += _local_engine_problems(config.engine, load_model=load_model)
        if config.engine.semantic:  # profiles' example libraries judge text then
            problems += example_problems(config.engine.example_libraries, config.profiles)
    elif isinstance(config.engine, AmsEngineConfig):
        try:
            credentials_from_config(config.engine)
        except ConfigError as exc:
            problems += exc.problems
    if isinstance(config.image_engine, ImsImageConfig):  # frames judged by Tencent IMS
        try:
            ims_credentials(config.image_engine)
        except ConfigError as exc:
            problems += exc.problems
    return problems


def _source_problems(config: Config, index: int) -> list[ConfigProblem]:
    stream = config.streams[index]
    try:
        resolve_source(stream.url, config.ingest)
    except AddressNotAllowed:
        reason = f"{POLICY_REFUSAL}: its host is an address ingest.addresses denies"
        return [ConfigProblem(f"streams[{index}].url", f"{reason} (stream {stream.id!r})")]
    except (StreamGuardError, ValueError) as exc:  # ValueError: urllib cannot parse it
        return [ConfigProblem(f"streams[{index}].url", f"{exc} (stream {stream.id!r})")]
    if isinstance(config.engine, AmsEngineConfig) and config.engine.mode == "live":
        refusal = unpullable(stream.url)
        if refusal is not None:
            return [ConfigProblem(f"streams[{index}].url", f"{refusal} (stream {stream.id!r})")]
    return []


def _local_engine_problems(engine: LocalEngineConfig, *, load_model: bool) -> list[ConfigProblem]:
    problems: list[ConfigProblem] = []
    try:
        LibrarySet.of(engine)
    except ConfigError as exc:  # LibraryError names the file, library and keyword
        problems += [ConfigProblem(f"engine.libraries: {p.path}", p.reason) for p in exc.problems]
    except (ValueError, RecursionError) as exc:  # not UTF-8, or nested too deep
        problems.append(ConfigProblem("engine.libraries", f"a file cannot be loaded: {exc}"))
    if load_model:
        recognizer = Recognizer(
            engine.model, cpu_threads=engine.cpu_threads, compute_type=engine.compute_type
        )
        try:
            recognizer.load()
        except StreamGuardError as exc:
            problems.append(ConfigProblem("engine.model", str(exc)))
    return problems
