"""Every config snippet in the docs and the README: watchdogd configs pass the loader that
`watchdogd check-config` uses, other YAML and JSON parse, systemd drop-ins pass
`systemd-analyze verify`, and every relative link leads somewhere."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.docs.doc_pages import ROOT, Block, all_blocks, anchors, blocks, links, pages
from tests.support import require
from watchdogd.config.base import config_keys
from watchdogd.config.loader import load_config_text
from watchdogd.config.schema import Config, TargetConfig, TargetKind
from watchdogd.errors import ConfigError

CONFIG_KEYS = set(config_keys(Config))
TARGET_KEYS = set(config_keys(TargetConfig))
#: Top-level keys that say which other tool's file a YAML block is.
FOREIGN = {
    "services": "a Compose file or Swarm stack",
    "route": "an Alertmanager config",
    "receivers": "an Alertmanager config",
    "scrape_configs": "a Prometheus config",
    "rule_files": "a Prometheus config",
    "groups": "Prometheus rules",
    "apiVersion": "a Grafana provisioning file",
}
UNIT = ROOT / "systemd" / "watchdogd.service"
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def environment_for(text: str) -> dict[str, str]:
    """A value for every ``${VAR}`` without a default, as a deployment would set it."""
    return {name: f"doc-example-{name.lower()}" for name in _ENV_REF.findall(text)}


def as_config(data: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
    """(what it is, a whole config) for a watchdogd config or a part of one target."""
    if set(data) <= CONFIG_KEYS:
        return "a watchdogd config", data
    if set(data) <= TARGET_KEYS:
        target = {"name": "doc-example", **data}
        if not {k.value for k in TargetKind} & set(data) and "kind" not in data:
            target["container"] = "doc-example"
        return "a part of a watchdogd target", {"targets": [target]}
    return None


def ids(blocks: list[Block]) -> list[str]:
    return [b.where for b in blocks]


YAML_BLOCKS = all_blocks("yaml", "yml")
JSON_BLOCKS = all_blocks("json")
INI_BLOCKS = all_blocks("ini")


class TestYamlSnippets:
    @pytest.mark.parametrize("block", YAML_BLOCKS, ids=ids(YAML_BLOCKS))
    def test_snippet_is_valid(self, block: Block) -> None:
        """A watchdogd config passes the config loader; any other YAML parses and is known."""
        if block.skip_reason:
            pytest.skip(block.skip_reason)
        data = yaml.safe_load(block.text)
        assert isinstance(data, dict), f"{block.where}: expected a mapping"
        config = as_config(data)
        if config is None:
            kinds = {FOREIGN[k] for k in data if k in FOREIGN}
            assert kinds, (
                f"{block.where}: neither a watchdogd config (keys {sorted(CONFIG_KEYS)}), a "
                f"part of a target, nor a known file (keys {sorted(FOREIGN)}): {sorted(data)}"
            )
            return
        _what, whole = config
        text = yaml.safe_dump(whole) if whole is not data else block.text
        try:
            load_config_text(text, block.where, environment_for(block.text))
        except ConfigError as err:
            pytest.fail(f"{block.where} does not pass check-config:\n{err}", pytrace=False)


class TestJsonSnippets:
    @pytest.mark.parametrize("block", JSON_BLOCKS, ids=ids(JSON_BLOCKS))
    def test_snippet_parses(self, block: Block) -> None:
        """A JSON example is JSON."""
        json.loads(block.text)


def verify_with_drop_in(tmp_path: Path, drop_ins: list[str]) -> subprocess.CompletedProcess[str]:
    """`systemd-analyze verify` of the shipped unit with ``drop_ins`` in its .d directory."""
    analyze = shutil.which("systemd-analyze")
    require(analyze is not None, "systemd-analyze (Debian package systemd)")
    assert analyze is not None
    binary = Path(sys.executable).with_name("watchdogd")
    unit = tmp_path / "watchdogd.service"
    unit.write_text(UNIT.read_text().replace("/usr/local/bin/watchdogd", str(binary)))
    directory = tmp_path / "watchdogd.service.d"
    directory.mkdir(exist_ok=True)
    for number, text in enumerate(drop_ins):
        (directory / f"{number:02d}-doc.conf").write_text(text)
    return subprocess.run(
        [analyze, "verify", str(unit)],
        capture_output=True,
        text=True,
        env={"SYSTEMD_UNIT_PATH": f"{tmp_path}:", "PATH": "/usr/bin:/bin"},
        check=False,
    )


class TestSystemdDropIns:
    @pytest.mark.parametrize("block", INI_BLOCKS, ids=ids(INI_BLOCKS))
    def test_drop_in_verifies(self, block: Block, tmp_path: Path) -> None:
        """The drop-in, added to the shipped unit, passes systemd-analyze verify silently."""
        result = verify_with_drop_in(tmp_path, [block.text])
        assert result.returncode == 0, result.stderr
        assert result.stderr.strip() == "", result.stderr


#: Block languages the tests check, and `text` for output and synopses, which they do not.
CHECKED_LANGUAGES = {"yaml", "yml", "json", "ini", "sh", "text"}


class TestBlockLanguages:
    @pytest.mark.parametrize("page", pages(), ids=lambda p: str(p.relative_to(ROOT)))
    def test_every_block_is_of_a_checked_kind(self, page: Path) -> None:
        """A block in a language the tests do not check would escape them: name it `text`
        if it is output, or teach tests/docs to check it."""
        unchecked = [
            f"{b.where}: ```{b.language}"
            for b in blocks(page)
            if b.language not in CHECKED_LANGUAGES and not b.skip_reason
        ]
        assert unchecked == []


class TestLinks:
    @pytest.mark.parametrize("page", pages(), ids=lambda p: str(p.relative_to(ROOT)))
    def test_relative_links_resolve(self, page: Path) -> None:
        """Each relative link names a file that exists, and a heading on it if it has '#'."""
        broken = []
        for line, target in links(page):
            path, _, anchor = target.partition("#")
            destination = (page.parent / path).resolve() if path else page
            if not destination.exists():
                broken.append(f"{page.name}:{line}: {target}: no such file")
            elif anchor and destination.suffix == ".md" and anchor not in anchors(destination):
                broken.append(f"{page.name}:{line}: {target}: no such heading")
        assert broken == []
