"""A daemon imports what its config uses (issue #16): `watchdogd run` with release directories
and HTTP checks never loads the Docker SDK (nor watchdogd's Docker and Swarm code), the
database and cache clients, Apprise, the SQL splitter, the retry library, the CLI's HTTP
client, the deploy manager and its HAProxy code, or frozenlist's C extension; a container
target still gets the Docker SDK it needs. No daemon loads pydantic or
PyYAML: its config is validated by a child process (``config.out_of_process``).

Each case runs the real `watchdogd run` in a fresh interpreter, waits for its systemd READY
message, and lists the modules loaded at that moment.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.support.ports import free_port

# Runs `watchdogd run`; at READY=1 it records sys.modules and stops the daemon with SIGTERM.
PROBE = textwrap.dedent(
    """
    import json, os, signal, socket, sys, tempfile, threading
    path = os.path.join(tempfile.mkdtemp(), "notify")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    os.environ["NOTIFY_SOCKET"] = path
    seen = {}
    def wait():
        while b"READY=1" not in sock.recv(4096):
            pass
        seen["modules"] = sorted(sys.modules)
        seen["environ"] = sorted(k for k in os.environ if k.endswith("_NO_EXTENSIONS"))
        os.kill(os.getpid(), signal.SIGTERM)
    threading.Thread(target=wait, daemon=True).start()
    from watchdogd.cli import main
    code = main(["run", "--config", sys.argv[1]])
    print("\\n" + json.dumps({"code": code, **seen}))
    """
)

HEAVY = ("docker", "requests", "urllib3", "httpx", "psycopg", "redis", "apprise", "sqlparse")
VALIDATION = ("pydantic", "pydantic_core", "yaml")
# tenacity: only a playbook step's retries use it, so only the first incident loads it.
NOT_IDLE = (*HEAVY, *VALIDATION, "tenacity")
DOCKER_CODE = (
    "watchdogd.engine.docker_api",
    "watchdogd.engine.swarm_api",
    "watchdogd.sources.docker_health",
    "watchdogd.targets.container",
    "watchdogd.targets.compose",
    "watchdogd.targets.swarm",
)
# Blue-green and canary deploys: only for targets with `traffic:` (daemon.wiring).
DEPLOY_CODE = ("watchdogd.deploy.manager", "watchdogd.traffic.haproxy", "watchdogd.traffic.split")


def loaded_at_ready(tmp_path: Path, target: str) -> set[str]:
    """The names of every module loaded when the daemon said READY."""
    config = tmp_path / "watchdogd.yaml"
    config.write_text(
        f"listen: 127.0.0.1:{free_port()}\n"
        f"state_dir: {tmp_path / 'state'}\n"
        "log: {format: json, level: warning}\n"
        # Never the shared engine: a socket that does not exist.
        f"docker: {{host: unix://{tmp_path / 'no-engine.sock'}}}\n"
        "targets:\n" + textwrap.indent(target, "  ")
    )
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(config)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["code"] == 0, done.stdout + done.stderr
    assert result.get("modules") is not None, "the daemon never said READY"
    # FROZENLIST_NO_EXTENSIONS is set for the daemon's imports only: its children (restart
    # commands, hooks) get the environment the operator gave.
    assert result["environ"] == []
    return set(result["modules"])


def packages(modules: set[str]) -> set[str]:
    return {name.split(".")[0] for name in modules}


def test_release_dir_with_http_checks_loads_no_heavy_client(tmp_path: Path) -> None:
    release = tmp_path / "app"
    (release / "releases" / "v1").mkdir(parents=True)
    (release / "current").symlink_to(release / "releases" / "v1")
    target = textwrap.dedent(
        f"""\
        - name: app
          release_dir: {{path: {release}, restart: ["true"]}}
          checks:
            - {{name: web, type: http, url: "http://127.0.0.1:{free_port()}/", interval: 1s}}
          gates:
            - {{check: web, metric: error_rate, above: 1%}}
          playbook:
            - rollback: {{}}
        """
    )
    modules = loaded_at_ready(tmp_path, target)
    loaded = packages(modules)
    assert "watchdogd" in loaded
    assert "aiohttp" in loaded  # the probes and the API do need it
    assert loaded.isdisjoint(NOT_IDLE), sorted(loaded & set(NOT_IDLE))
    assert modules.isdisjoint(DOCKER_CODE), sorted(modules & set(DOCKER_CODE))
    assert modules.isdisjoint(DEPLOY_CODE), sorted(modules & set(DEPLOY_CODE))
    # The pure-Python FrozenList: the C one links libstdc++ (cli._run).
    assert "frozenlist" in modules
    assert "frozenlist._frozenlist" not in modules


def test_a_container_target_still_loads_the_docker_sdk(tmp_path: Path) -> None:
    target = textwrap.dedent(
        """\
        - name: api
          container: api
          checks:
            - {name: health, type: container_health}
          gates:
            - {check: health, metric: unhealthy}
        """
    )
    loaded = packages(loaded_at_ready(tmp_path, target))
    assert "docker" in loaded
    assert loaded.isdisjoint({"httpx", "psycopg", "redis", "apprise", "sqlparse", *VALIDATION})
