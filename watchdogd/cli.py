"""The ``watchdogd`` command line: one sub-command per job.

Exit codes: 0 success, 1 the job failed, 2 the config or the command line is wrong,
3 the daemon could not be reached.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from watchdogd import __version__
from watchdogd.config import Config, load_config
from watchdogd.errors import ConfigError

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_CONFIG = 2
EXIT_UNREACHABLE = 3


def summarize(config: Config) -> str:
    """One line that says what a config watches, for ``check-config`` and the daemon's STATUS."""
    checks = sum(len(t.checks) for t in config.targets)
    gates = sum(len(t.gates) for t in config.targets)

    def plural(count: int, noun: str) -> str:
        return f"{count} {noun}{'' if count == 1 else 's'}"

    return ", ".join(
        [
            plural(len(config.targets), "target"),
            plural(checks, "check"),
            plural(gates, "gate"),
            plural(len(config.notify), "notifier"),
        ]
    )


def _check_config(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.file)
    except ConfigError as err:
        print(err, file=sys.stderr)
        return EXIT_CONFIG
    print(f"{args.file}: OK: {summarize(config)}")
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="watchdogd",
        description="Watches deployments on Docker hosts and rolls a bad release back by itself.",
    )
    parser.add_argument("--version", action="version", version=f"watchdogd {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    check = commands.add_parser("check-config", help="validate a config file and summarize it")
    check.add_argument("file", help="path to watchdogd.yaml")
    check.set_defaults(handler=_check_config)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.handler
    return handler(args)
