"""benchmarks/shipped_env.py: benchmarks and tests run the daemon in the shipped unit's
environment."""

from __future__ import annotations

from pathlib import Path

from tests.support.scripts import benchmark_modules

UNIT = """\
[Service]
ExecStart=/usr/local/bin/watchdogd run
Environment=MALLOC_ARENA_MAX=2
# Environment=COMMENTED=out
Environment=PYTHONOPTIMIZE=2 "GREETING=hello world" PYTHONPYCACHEPREFIX=%C/watchdogd
EnvironmentFile=-/etc/default/watchdogd
"""


def test_every_environment_line_with_quotes_and_the_cache_specifier() -> None:
    with benchmark_modules("shipped_env") as shipped_env:
        env = shipped_env.unit_environment(UNIT, Path("/venv/cache"))
    assert env == {
        "MALLOC_ARENA_MAX": "2",
        "PYTHONOPTIMIZE": "2",
        "GREETING": "hello world",
        "PYTHONPYCACHEPREFIX": "/venv/cache/watchdogd",
    }


def test_the_daemon_environment_writes_bytecode_as_the_unit_does() -> None:
    """The unit sets no PYTHONDONTWRITEBYTECODE: a shell's is dropped, the rest is kept."""
    with benchmark_modules("shipped_env") as shipped_env:
        env = shipped_env.daemon_environment(
            {"PATH": "/bin", "PYTHONDONTWRITEBYTECODE": "1", "PYTHONOPTIMIZE": "0"}
        )
    assert "PYTHONDONTWRITEBYTECODE" not in env
    assert env["PATH"] == "/bin"
    assert env["PYTHONOPTIMIZE"] == "2"  # the unit's, over the shell's
    assert env["PYTHONPYCACHEPREFIX"].endswith("/cache/watchdogd")
