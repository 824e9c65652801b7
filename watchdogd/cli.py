"""The ``watchdogd`` command line: one sub-command per job.

Exit codes: 0 success, 1 the job failed, 2 the config or the command line is wrong,
3 the daemon (for ``demo --docker``: the Docker engine) could not be reached.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from watchdogd import __version__
from watchdogd.api.client import Endpoint, call, resolve_endpoint
from watchdogd.config import summarize
from watchdogd.core.deploy_plan import Stage, outcome_exit_code
from watchdogd.demo.release import FAULT_DESCRIPTIONS, FAULTS
from watchdogd.errors import ClientError, ConfigError

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_CONFIG = 2
EXIT_UNREACHABLE = 3


def _check_config(args: argparse.Namespace) -> int:
    # Without --require-env an unset ${VAR} is a placeholder: CI can check a config without
    # its secrets. `run` always requires them.
    from watchdogd.config.loader import load_config  # noqa: PLC0415 - pydantic: not for `run`

    try:
        config = load_config(args.file, placeholders=not args.require_env)
    except ConfigError as err:
        print(err, file=sys.stderr)
        return EXIT_CONFIG
    if config.unset_variables:
        names = ", ".join(config.unset_variables)
        print(
            f"{args.file}: note: not set, checked with placeholders: {names} "
            "(`watchdogd run` needs them; --require-env to check them too)",
            file=sys.stderr,
        )
    print(f"{args.file}: OK: {summarize(config)}")
    return EXIT_OK


def _run(args: argparse.Namespace) -> int:
    from watchdogd.config.out_of_process import PendingConfig  # noqa: PLC0415

    # The config is validated in a child process while this one imports the daemon, which
    # pulls in aiohttp and the rest: load it only for `run`.
    pending = PendingConfig(args.config)
    # frozenlist's C extension links libstdc++, 0.9 MB resident for the handful of signal and
    # middleware lists aiohttp keeps; its pure-Python FrozenList is the same class. Set for the
    # import only: the daemon's own children (restart commands, hooks) get the environment as
    # it was.
    with _environ("FROZENLIST_NO_EXTENSIONS", "1"):
        from watchdogd.daemon.lifecycle import run_daemon  # noqa: PLC0415

    return run_daemon(args.config, pending)


@contextlib.contextmanager
def _environ(name: str, value: str) -> Iterator[None]:
    """``name=value`` in the environment within the block, unless the operator set it."""
    if name in os.environ:
        yield
        return
    os.environ[name] = value
    try:
        yield
    finally:
        del os.environ[name]


def _api(
    args: argparse.Namespace, method: str, path: str, body: dict[str, Any] | None = None
) -> Any:
    endpoint = resolve_endpoint(args.url, args.token, args.config)
    return call(endpoint, method, path, body)


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, sort_keys=True))


def _release_label(release: dict[str, Any] | None) -> str:
    if not release:
        return "-"
    return _printable(str(release.get("image_ref") or release.get("image") or "-")[:40])


def _status(args: argparse.Namespace) -> int:
    data = _api(args, "GET", "/api/v1/targets")
    if args.json:
        _print_json(data)
        return EXIT_OK
    rows = [("TARGET", "STATE", "CURRENT", "KNOWN-GOOD", "GATES")]
    for target in data["targets"]:
        breached = [g["gate"] for g in target["gates"] if g["verdict"] == "breached"]
        unknown = [g["gate"] for g in target["gates"] if g["verdict"] == "unknown"]
        gates = (
            f"breached: {', '.join(breached)}"
            if breached
            else f"{len(unknown)} unknown"
            if unknown
            else "ok"
        )
        rows.append(
            (
                target["name"],
                _state_label(target),
                _release_label(target.get("current_release")),
                _release_label(target.get("known_good_release")),
                gates,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        )
    return EXIT_OK


def _state_label(target: dict[str, Any]) -> str:
    """The state, with a running deploy's step and weight, or the warm-up."""
    bake = (target.get("deploy") or {}).get("bake")
    if bake:
        paused = ", paused" if bake["paused"] else ""
        strategy = str(bake["strategy"]).replace("_", "-")
        steps = f"step {bake['step']}/{len(bake['steps'])}"
        return f"{target['state']} ({strategy} {bake['weight']} %, {steps}{paused})"
    return f"{target['state']} (warming up)" if target.get("warming_up") else target["state"]


def _history(args: argparse.Namespace) -> int:
    query = f"/api/v1/events?limit={args.limit}" + (f"&target={args.target}" if args.target else "")
    data = _api(args, "GET", query)
    if args.json:
        _print_json(data)
        return EXIT_OK
    for event in data["events"]:
        at = datetime.fromtimestamp(event["at"], UTC).strftime("%Y-%m-%d %H:%M:%SZ")
        target, kind = _printable(event["target"] or "-"), _printable(event["kind"])
        print(f"{at}  {target:<16} {kind:<18} {_printable(event['message'])}")
    return EXIT_OK


def _printable(text: str) -> str:
    """``text`` with control characters escaped (``\\x1b``, ``\\n``): an alert's labels reach
    the terminal through the history, and must not move its cursor or change its colours."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _rollback(args: argparse.Namespace) -> int:
    body: dict[str, Any] = {"reason": args.reason}
    if args.to:
        body["to"] = args.to
    data = _api(args, "POST", f"/api/v1/targets/{args.target}/rollback", body)
    if args.json:
        _print_json(data)
    else:
        print(f"{args.target}: rollback started (incident {data.get('incident')})")
    return EXIT_OK


def _freeze(args: argparse.Namespace) -> int:
    verb = "freeze" if args.command == "freeze" else "unfreeze"
    body = {"reason": args.reason} if verb == "freeze" else None
    data = _api(args, "POST", f"/api/v1/targets/{args.target}/{verb}", body)
    if args.json:
        _print_json(data)
    else:
        print(f"{args.target}: {data.get('state', verb + 'd')}")
    return EXIT_OK


def _canary(args: argparse.Namespace) -> int:
    data = _api(args, "POST", f"/api/v1/targets/{args.target}/deploy/{args.order}")
    if args.json:
        _print_json(data)
    else:
        print(f"{args.target}: {data['result']}")
    return EXIT_OK


def _unquarantine(args: argparse.Namespace) -> int:
    body = {"image": args.image}
    data = _api(args, "POST", f"/api/v1/targets/{args.target}/unquarantine", body)
    if args.json:
        _print_json(data)
    else:
        print(f"{args.target}: {args.image} is no longer quarantined")
    return EXIT_OK


def _deploy(args: argparse.Namespace) -> int:
    endpoint = resolve_endpoint(args.url, args.token, args.config)
    return _follow_deploy(endpoint, args.target, args.image, detach=args.detach, as_json=args.json)


# `watchdogd deploy` polls the deploy's progress; the daemon may restart under it (it resumes
# the deploy from its journal), so an unreachable daemon is waited for, for a while.
DEPLOY_POLL = 0.5
UNREACHABLE_PATIENCE = 120.0
# HTTP answers that mean the command line or the config is wrong, not the release.
USAGE_STATUSES = frozenset({400, 404, 422})


def _follow_deploy(
    endpoint: Endpoint, target: str, image: str, *, detach: bool, as_json: bool
) -> int:
    try:
        started = call(endpoint, "POST", f"/api/v1/targets/{target}/deploy", {"image": image})
    except ClientError as err:
        if err.status in USAGE_STATUSES:
            print(f"watchdogd deploy: {err}", file=sys.stderr)
            return EXIT_CONFIG
        raise
    deploy: dict[str, Any] = started["deploy"]
    if detach:
        if as_json:
            print(json.dumps(started, indent=2, sort_keys=True))
        else:
            print(f"{target}: deploy {deploy['id']} of {image} started")
        return EXIT_OK
    printed = 0
    patience_until = time.monotonic() + UNREACHABLE_PATIENCE
    while True:
        lines = deploy.get("lines") or []
        for line in lines[printed:]:
            print(line, flush=True)
        printed = max(printed, len(lines))
        if deploy.get("final"):
            break
        time.sleep(DEPLOY_POLL)
        try:
            answer = call(endpoint, "GET", f"/api/v1/targets/{target}/deploy?id={deploy['id']}")
        except ClientError as err:
            if err.exit_code != 3 or time.monotonic() > patience_until:
                raise
            continue  # the daemon restarts; it resumes the deploy from its journal
        patience_until = time.monotonic() + UNREACHABLE_PATIENCE
        deploy = answer["deploy"] or deploy
    return _deploy_outcome(target, image, deploy, as_json=as_json)


def _deploy_outcome(target: str, image: str, deploy: dict[str, Any], *, as_json: bool) -> int:
    stage = Stage(deploy["stage"])
    if as_json:
        print(json.dumps(deploy, indent=2, sort_keys=True))
    elif stage is Stage.PROMOTED:
        print(f"{target}: {image} promoted")
    else:
        print(f"{target}: {image} {stage.value.replace('_', ' ')}: {deploy.get('reason')}")
    return outcome_exit_code(stage)


def _demo(args: argparse.Namespace) -> int:
    if args.traffic:
        from watchdogd.demo.blue_green import run_traffic_demo  # noqa: PLC0415

        return run_traffic_demo(args.dir)
    # Like `run`, the demo needs the daemon's dependencies; load them only for it.
    from watchdogd.demo.runner import DemoOptions, run_demo  # noqa: PLC0415

    labels = {}
    for item in args.label:
        key, sep, value = item.partition("=")
        if not sep or not key:
            print(f"watchdogd demo: --label wants KEY=VALUE, got {item!r}", file=sys.stderr)
            return EXIT_CONFIG
        labels[key] = value
    options = DemoOptions(
        fault=args.fault, docker=args.docker, directory=args.dir, plain=args.plain, labels=labels
    )
    return run_demo(options)


def _add_client_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", help="daemon URL (default: from --config, or WATCHDOGD_URL)")
    parser.add_argument("--token", help="API token (default: WATCHDOGD_TOKEN, or the config's)")
    parser.add_argument("--config", help="read URL and token from this watchdogd.yaml")
    parser.add_argument("--json", action="store_true", help="print the raw JSON answer")


def _add_deploy_commands(commands: Any) -> None:
    deploy = commands.add_parser(
        "deploy",
        help="blue-green deploy of an image to a target with traffic:",
        description="Starts IMAGE next to the running release, checks it directly, switches "
        "HAProxy to it, bakes it on real traffic, then promotes it or switches back. Exit 0 "
        "when promoted, 1 when rolled back or refused (with the reason), 2 on a config or "
        "usage error, 3 when the daemon cannot be reached.",
    )
    deploy.add_argument("target")
    deploy.add_argument("image", help="an image on the Docker host, e.g. shop/api:1.4.2")
    deploy.add_argument("--detach", action="store_true", help="return once the deploy started")
    _add_client_flags(deploy)
    deploy.set_defaults(handler=_deploy)

    canary = commands.add_parser(
        "canary",
        help="pause, resume, promote or abort the deploy running on a target",
        description="An operator's order to a running deploy (canary or blue-green): pause "
        "stops the step's clock (the gates still judge), resume starts it again, promote skips "
        "the remaining steps, abort switches every request back to blue. Exit 1 when the "
        "order does not apply now (the reason is printed).",
    )
    canary.add_argument("order", choices=["pause", "resume", "promote", "abort"])
    canary.add_argument("target")
    _add_client_flags(canary)
    canary.set_defaults(handler=_canary)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="watchdogd",
        description="Watches deployments on Docker hosts and rolls a bad release back by itself.",
    )
    parser.add_argument("--version", action="version", version=f"watchdogd {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    check = commands.add_parser("check-config", help="validate a config file and summarize it")
    check.add_argument("file", help="path to watchdogd.yaml")
    check.add_argument(
        "--require-env",
        action="store_true",
        help="fail on an unset ${VAR}, as `run` does (default: check with a placeholder)",
    )
    check.set_defaults(handler=_check_config)

    run = commands.add_parser("run", help="run the daemon")
    run.add_argument("--config", required=True, help="path to watchdogd.yaml")
    run.set_defaults(handler=_run)

    status = commands.add_parser("status", help="a table of targets")
    _add_client_flags(status)
    status.set_defaults(handler=_status)

    history = commands.add_parser("history", help="releases, incidents and decisions")
    history.add_argument("target", nargs="?")
    history.add_argument("--limit", type=int, default=50)
    _add_client_flags(history)
    history.set_defaults(handler=_history)

    rollback = commands.add_parser("rollback", help="roll a target back now")
    rollback.add_argument("target")
    rollback.add_argument("--to", help="a release id (default: the newest known-good)")
    rollback.add_argument("--reason", default="requested from the command line")
    _add_client_flags(rollback)
    rollback.set_defaults(handler=_rollback)

    for verb, text in (("freeze", "stop automatic action"), ("unfreeze", "resume it")):
        sub = commands.add_parser(verb, help=f"{text} on a target")
        sub.add_argument("target")
        if verb == "freeze":
            sub.add_argument("--reason", default="frozen from the command line")
        _add_client_flags(sub)
        sub.set_defaults(handler=_freeze)

    unquarantine = commands.add_parser(
        "unquarantine", help="allow a rolled-back release to be deployed again"
    )
    unquarantine.add_argument("target")
    unquarantine.add_argument("image", help="the image as `watchdogd status --json` lists it")
    _add_client_flags(unquarantine)
    unquarantine.set_defaults(handler=_unquarantine)

    _add_deploy_commands(commands)

    faults = "; ".join(f"{fault}: {FAULT_DESCRIPTIONS[fault]}" for fault in FAULTS)
    demo = commands.add_parser(
        "demo",
        help="watch watchdogd roll back a bad release, in under a minute",
        description="Starts a sample app (v1) and watchdogd, deploys a broken v2, and shows "
        "watchdogd detect it and roll back. Exit 0 when the rollback succeeded.",
    )
    demo.add_argument(
        "--fault", choices=FAULTS, default="errors", help=f"how v2 is broken ({faults})"
    )
    demo.add_argument(
        "--docker", action="store_true", help="run the app as containers (needs a Docker engine)"
    )
    demo.add_argument(
        "--traffic",
        action="store_true",
        help="a blue-green deploy behind HAProxy going wrong and switched back (needs haproxy)",
    )
    demo.add_argument(
        "--dir",
        type=Path,
        help="an empty or new working directory, kept afterwards (default: new, under /tmp)",
    )
    demo.add_argument("--plain", action="store_true", help="plain lines, even on a terminal")
    demo.add_argument(
        "--label",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="with --docker: a label for every container and image the demo creates",
    )
    demo.set_defaults(handler=_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except ClientError as err:
        print(f"watchdogd: {err}", file=sys.stderr)
        return err.exit_code
