"""Every command in the docs' `sh` blocks is exercised, page by page, in the order written.

`watchdogd` commands and `curl` calls run against a real daemon started for this module, whose
targets are release directories named after the targets the commands use. The addresses and
files the docs assume (`127.0.0.1:9797`, `/etc/watchdogd/…`, `.venv/bin/`) are pointed at it.
Programs that would change the machine are not run; ``NOT_RUN`` gives each one's reason, and a
program in no list fails the test, so a new kind of command needs a decision here.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.docs.doc_pages import ROOT, Block, all_blocks, blocks, commands, pages, programs
from tests.docs.test_docs_snippets import verify_with_drop_in
from tests.support import require
from tests.support.ports import free_port
from tests.support.waiting import wait_for
from watchdogd.cli import build_parser
from watchdogd.demo import release

TOKEN = "docs-test-token-0123456789"
#: Programs the docs show but the tests do not run, and why.
NOT_RUN = {
    "systemctl": "needs systemd as PID 1 and changes the host's services",
    "journalctl": "reads the host's journal; needs systemd as PID 1",
    "useradd": "creates a system user",
    "install": "installs files owned by a watchdogd user that test machines do not have",
    "pip": "installs into a system location; `make` runs the same install into .venv",
    "docker": "acts on the host's engine and on containers the page describes, which a test "
    "machine does not run; the Docker behaviour the docs describe has its own tests "
    "(tests/targets, tests/demo, tests/packaging)",
}
#: Programs run in a scratch directory: absolute paths under these roots are moved into it.
SANDBOXED = {"ln", "mv"}
SANDBOX_ROOTS = ("/srv/", "/opt/", "/usr/local/")
#: watchdogd sub-commands checked by parsing only: `run` does not end, and the demo has its
#: own tests (tests/demo/test_demo_run.py).
PARSE_ONLY = {"run", "demo"}


class OkApp(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: object) -> None:
        pass


@dataclass
class DocsDaemon:
    url: str
    config: Path
    token: Path
    unit_dir: Path
    scratch: Path
    env: dict[str, str] = field(default_factory=dict)

    def rewrite(self, command: str) -> str:
        replaced = command.replace("http://127.0.0.1:9797", self.url)
        replaced = replaced.replace("/etc/watchdogd/watchdogd.yaml", str(self.config))
        replaced = replaced.replace("/etc/watchdogd/token", str(self.token))
        unit = str(self.unit_dir / "watchdogd.service")
        replaced = replaced.replace("/etc/systemd/system/watchdogd.service", unit)
        bin_dir = str(Path(sys.executable).parent)
        return re.sub(r"(?<![\w/])\.venv/bin/", bin_dir + "/", replaced)


def target_names() -> set[str]:
    """Every target the docs' commands name, so the daemon can have each."""
    parser = build_parser()
    names = set()
    for block in all_blocks("sh"):
        for command in commands(block):
            if programs(command)[:1] == ["watchdogd"]:
                words = shlex.split(command, comments=True)
                try:
                    args = parser.parse_args(words[1:])
                except SystemExit:
                    continue
                if getattr(args, "target", None):
                    names.add(args.target)
            names.update(re.findall(r"/api/v1/targets/([A-Za-z0-9_.-]+)", command))
    return names or {"api"}


@pytest.fixture(scope="module")
def docs_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DocsDaemon]:
    """A daemon whose targets have two known-good releases each, v1 and v2 (v2 running)."""
    tmp = tmp_path_factory.mktemp("docs-daemon")
    server = ThreadingHTTPServer(("127.0.0.1", 0), OkApp)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    app = f"http://127.0.0.1:{server.server_address[1]}/"
    names = sorted(target_names())
    targets = []
    for name in names:
        root = tmp / "targets" / name
        release.create(root, "errors", release.AppSettings(port=0))
        targets.append(
            f"  - name: {name}\n"
            f"    release_dir: {{path: {root}, restart: [/bin/true]}}\n"
            f"    checks: [{{name: health, type: http, url: '{app}', interval: 200ms}}]\n"
            f"    gates: [{{check: health, metric: error_rate, above: 1%}}]\n"
        )
    port = free_port()
    token = tmp / "token"
    token.write_text(TOKEN + "\n")
    config = tmp / "watchdogd.yaml"
    config.write_text(
        f"listen: 127.0.0.1:{port}\napi_token_file: {token}\nstate_dir: {tmp / 'state'}\n"
        "log: {format: json, level: info}\ndocker: {poll_interval: 200ms}\n"
        "defaults: {window: 1m, bake_time: 1s, cooldown: 1s}\n"
        "targets:\n" + "".join(targets)
    )
    log = tmp / "daemon.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "watchdogd", "run", "--config", str(config)],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"

    def status(name: str) -> dict[str, Any]:
        return httpx.get(f"{url}/api/v1/targets/{name}", timeout=5).json()  # type: ignore[no-any-return]

    def settled_on(name: str, version: str) -> bool:
        now = status(name)  # {"error": ...} with 503 while the daemon starts
        current = now.get("current_release") or {}
        return bool(now.get("state") == "healthy" and current.get("image") == version)

    try:
        try:
            for name in names:
                wait_for(
                    f"{name} on v1",
                    lambda n=name: settled_on(n, release.GOOD),
                    ignore=(httpx.HTTPError,),
                )
                release.switch(tmp / "targets" / name, release.BAD)
            for name in names:
                wait_for(
                    f"{name} on v2",
                    lambda n=name: settled_on(n, release.BAD),
                    ignore=(httpx.HTTPError,),
                )
        except AssertionError as err:
            raise AssertionError(f"{err}\n{log.read_text()[-4000:]}") from None
        env = {
            **os.environ,
            "WATCHDOGD_URL": url,
            "WATCHDOGD_TOKEN": TOKEN,
            "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",
        }
        (tmp / "unit").mkdir()
        (tmp / "scratch").mkdir()
        yield DocsDaemon(url, config, token, tmp / "unit", tmp / "scratch", env)
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        server.shutdown()


def run(command: str, env: dict[str, str], cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-c", command],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=60,
        check=False,
    )


class Runner:
    """Runs one page's commands in order, like one shell session: `export` and `cd` carry
    over to the next commands."""

    def __init__(self, daemon: DocsDaemon, block: Block) -> None:
        self.daemon = daemon
        self.block = block
        self.env = dict(daemon.env)
        self.cwd = ROOT
        self.not_run: list[str] = []
        self.ran: list[str] = []

    def fail(self, command: str, why: str) -> None:
        pytest.fail(f"{self.block.where}: `{command}`: {why}", pytrace=False)

    def command(self, command: str) -> None:
        names = programs(command)
        unknown = [p for p in names if p in NOT_RUN]
        if unknown:
            self.not_run.append(f"{command}  ({NOT_RUN[unknown[0]]})")
            return
        first = names[0] if names else ""
        line = self.daemon.rewrite(command)
        handlers: dict[str, Callable[[str, str], str]] = {
            "export": self.export,
            "watchdogd": self.watchdogd,
            "curl": self.curl,
            "systemd-analyze": self.systemd_analyze,
            "make": self.make,
            "bash": self.script,
            "cd": self.cd,
        }
        if first in handlers:
            outcome = handlers[first](command, line)
        elif first.startswith("python"):
            outcome = self.python(command, line)
        elif first in SANDBOXED and set(names) <= SANDBOXED:
            outcome = self.sandboxed(command, line)
        else:
            self.fail(command, f"the docs test does not know {first!r}: add it to a list here")
        self.ran.append(f"{command}  -> {outcome}")

    def cd(self, command: str, _line: str) -> str:
        words = shlex.split(command, comments=True)
        directory = (self.cwd / words[1]).resolve()
        if len(words) != 2 or not directory.is_dir():
            self.fail(command, f"no directory {directory}")
        self.cwd = directory
        return f"now in {directory.relative_to(ROOT) if directory != ROOT else '.'}"

    def export(self, command: str, line: str) -> str:
        result = run(f"{line}\nenv -0", self.env, self.cwd)
        if result.returncode != 0:
            self.fail(command, result.stderr)
        self.env = dict(item.split("=", 1) for item in result.stdout.split("\0") if "=" in item)
        return "exported"

    def expect_success(self, command: str, line: str) -> str:
        result = run(line, self.env, self.cwd)
        if result.returncode != 0:
            self.fail(command, f"exit {result.returncode}: {result.stdout}{result.stderr}")
        if result.stderr.strip() and " verify " in f" {line} ":
            self.fail(command, result.stderr)  # systemd-analyze verify warns on stderr only
        answer = result.stdout.strip().splitlines()
        return f"exit 0: {answer[0] if answer else ''}"

    def curl(self, command: str, line: str) -> str:
        require(shutil.which("curl"), "curl (Debian package curl)")
        return self.expect_success(command, line)

    def watchdogd(self, command: str, line: str) -> str:
        words = shlex.split(line, comments=True)
        try:
            args = build_parser().parse_args(words[1:])
        except SystemExit:
            self.fail(command, "the command line does not parse")
        if args.command in PARSE_ONLY:
            config = getattr(args, "config", None)
            if config and not Path(config).is_absolute():
                self.watchdogd(command, f"{words[0]} check-config {config}")
            return "parsed (not run: see PARSE_ONLY)"
        result = run(line, self.env, self.cwd)
        refused = result.returncode == 1 and "watchdogd said" in result.stderr
        if result.returncode != 0 and not refused:
            self.fail(command, f"exit {result.returncode}: {result.stdout}{result.stderr}")
        answer = (result.stderr if refused else result.stdout).strip().splitlines()
        return f"exit {result.returncode}: {answer[0] if answer else ''}"

    def systemd_analyze(self, command: str, line: str) -> str:
        require(shutil.which("systemd-analyze"), "systemd-analyze (Debian package systemd)")
        drop_ins = [b.text for b in blocks(self.block.page) if b.language == "ini"]
        verify_with_drop_in(self.daemon.unit_dir, drop_ins)  # writes the unit and drop-ins
        self.env["SYSTEMD_UNIT_PATH"] = f"{self.daemon.unit_dir}:"
        return self.expect_success(command, line)

    def make(self, command: str, _line: str) -> str:
        targets = shlex.split(command, comments=True)[1:]
        makefile = (self.cwd / "Makefile").read_text()
        for target in [t for t in targets if "=" not in t and not t.startswith("-")]:
            if not re.search(rf"^{re.escape(target)}:", makefile, re.MULTILINE):
                self.fail(command, f"the Makefile has no target {target!r}")
        return "the Makefile has the target (not run here: `make test` runs this suite)"

    def script(self, command: str, _line: str) -> str:
        path = shlex.split(command, comments=True)[1]
        if not (self.cwd / path).is_file():
            self.fail(command, f"no script {path}")
        return "the script exists (not run: it is CI itself)"

    def python(self, command: str, _line: str) -> str:
        words = shlex.split(command, comments=True)[1:]
        if words[:1] == ["-m"]:
            if find_spec(words[1]) is None:
                self.fail(command, f"no module {words[1]}")
            return f"module {words[1]} exists"
        if not (self.cwd / words[0]).is_file():
            self.fail(command, f"no script {words[0]}")
        return f"{words[0]} exists (benchmarks run in their own tests)"

    def sandboxed(self, command: str, line: str) -> str:
        for root in SANDBOX_ROOTS:
            moved = str(self.daemon.scratch) + root
            for path in re.findall(rf"(?<![\w/]){re.escape(root)}[\w./-]*", line):
                (self.daemon.scratch / path.lstrip("/")).parent.mkdir(parents=True, exist_ok=True)
            line = re.sub(rf"(?<![\w/]){re.escape(root)}", moved, line)
        return "in a scratch directory: " + self.expect_success(command, line)


PAGES = [p for p in pages() if any(b.language == "sh" for b in blocks(p))]


class TestDocumentedCommands:
    @pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
    def test_every_command_is_exercised(self, page: Path, docs_daemon: DocsDaemon) -> None:
        """Each command runs and succeeds (or, for an action, is refused by the daemon),
        or is one the test lists as not run, with its reason."""
        runner: Runner | None = None
        for block in blocks(page):
            if block.language != "sh" or block.skip_reason:
                continue
            runner = runner or Runner(docs_daemon, block)
            runner.block = block
            runner.ran, runner.not_run = [], []
            for command in commands(block):
                runner.command(command)
            if runner.ran:
                print(f"{block.where}: ran:", *runner.ran, sep="\n  ")
            if runner.not_run:
                print(f"{block.where}: not run:", *runner.not_run, sep="\n  ")


class TestDocumentedMetrics:
    def test_metric_names_exist(self, docs_daemon: DocsDaemon) -> None:
        """Every watchdogd_* name the docs mention is one the daemon exports."""
        # The deploy series come with the deploy manager: built by the first deploy API call
        # (the docs daemon has no target with traffic).
        first = httpx.get(docs_daemon.url + "/api/v1/targets").json()["targets"][0]["name"]
        httpx.get(f"{docs_daemon.url}/api/v1/targets/{first}/deploy")
        exported = set(re.findall(r"watchdogd_\w+", httpx.get(docs_daemon.url + "/metrics").text))
        mentioned = {
            name for page in pages() for name in re.findall(r"`(watchdogd_\w+)", page.read_text())
        }
        assert mentioned - exported == set()
        assert mentioned, "the docs name no metric at all"
