"""The config snippets in the surface docs are checked by the tools that will read them.

watchdogd configs by ``watchdogd check-config``, Alertmanager's by ``amtool check-config``,
Prometheus' by ``promtool``; a snippet that mirrors a shipped file must equal it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import require

ROOT = Path(__file__).resolve().parents[2]
PAGES = ("docs/sidecar.md", "docs/alertmanager.md", "docs/prometheus-grafana.md")
ENV = dict(os.environ, WATCHDOGD_TOKEN="docs-token")


def yaml_blocks(page: str) -> list[str]:
    return re.findall(r"```yaml\n(.*?)```", (ROOT / page).read_text(), flags=re.DOTALL)


def kind(block: str) -> str:
    if re.search(r"^route:", block, flags=re.MULTILINE):
        return "alertmanager"
    if re.search(r"^groups:", block, flags=re.MULTILINE):
        return "rules"
    if re.search(r"^scrape_configs:", block, flags=re.MULTILINE):
        return "prometheus"
    return "watchdogd"


BLOCKS = [
    pytest.param(page, index, block, id=f"{Path(page).stem}-{index}-{kind(block)}")
    for page in PAGES
    for index, block in enumerate(yaml_blocks(page))
]
CHECKERS = {
    "watchdogd": [sys.executable, "-m", "watchdogd", "check-config"],
    "alertmanager": ["amtool", "check-config"],
    "rules": ["promtool", "check", "rules"],
    "prometheus": ["promtool", "check", "config", "--syntax-only"],
}


class TestDocSnippets:
    def test_every_page_has_snippets(self) -> None:
        """Each page shows at least one config."""
        for page in PAGES:
            assert yaml_blocks(page), page

    @pytest.mark.parametrize(("page", "index", "block"), BLOCKS)
    def test_snippet_passes_its_checker(
        self, page: str, index: int, block: str, tmp_path: Path
    ) -> None:
        """The tool that reads this kind of file accepts the snippet."""
        command = CHECKERS[kind(block)]
        if command[0] != sys.executable:
            require(shutil.which(command[0]), f"{command[0]} (Prometheus/Alertmanager packages)")
        snippet = tmp_path / f"snippet{index}.yml"
        snippet.write_text(block)
        result = subprocess.run(
            [*command, str(snippet)], capture_output=True, text=True, check=False, env=ENV
        )
        assert result.returncode == 0, f"{page} block {index}:\n{result.stdout}{result.stderr}"

    def test_sidecar_page_shows_the_shipped_compose_config(self) -> None:
        """The config in docs/sidecar.md is config/compose/watchdogd.yaml without comments."""
        shipped = (ROOT / "config/compose/watchdogd.yaml").read_text().splitlines()
        expected = "\n".join(line for line in shipped if not line.lstrip().startswith("#"))
        assert expected + "\n" in yaml_blocks("docs/sidecar.md")
