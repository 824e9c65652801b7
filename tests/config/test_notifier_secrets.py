"""A token written into a notifier's URL is a secret, as one from ``${ENV}`` is: Apprise keeps
tokens in the host and path (``tgram://<bot token>/<chat id>``), where the URL redaction that
drops userinfo and query strings does not look."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.log_capture import json_logs
from watchdogd.config.loader import load_config
from watchdogd.config.schema import JSON_SCHEMES
from watchdogd.redact import notifier_secrets, redact, set_secrets

BOT_TOKEN = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"
SLACK = ("T1JJ3T3L2", "A1BRTD4JD", "TIiajkdnlazkcOXrIdevi7FQ")


def test_apprise_tokens_in_host_and_path_are_secrets() -> None:
    found = notifier_secrets(f"tgram://{BOT_TOKEN}/987654321", JSON_SCHEMES)
    assert BOT_TOKEN in found
    assert "987654321" in found
    assert set(SLACK) <= set(notifier_secrets("slack://" + "/".join(SLACK) + "/#ops", JSON_SCHEMES))


def test_short_segments_and_dns_names_stay_readable() -> None:
    found = notifier_secrets("ntfy://ntfy.example.com/ops?priority=high-urgent", JSON_SCHEMES)
    assert found == ["high-urgent"]
    assert notifier_secrets("mailto://alerts:pa55@mail.example.com", JSON_SCHEMES) == ["pa55"]


def test_a_json_webhook_keeps_its_readable_path() -> None:
    url = "json://hooks.example.com/watchdogd/incoming?token=abc123"
    assert notifier_secrets(url, JSON_SCHEMES) == ["abc123"]


@pytest.fixture
def output() -> Iterator[io.StringIO]:
    with json_logs() as stream:
        yield stream


def test_a_loaded_config_hides_them_from_a_library_warning(
    tmp_path: Path, output: io.StringIO
) -> None:
    path = tmp_path / "watchdogd.yaml"
    path.write_text(f"""\
notify:
  - {{name: chat, url: "tgram://{BOT_TOKEN}/987654321"}}
  - {{name: team, url: "json://127.0.0.1:9/hook"}}
targets: []
""")
    config = load_config(path)
    set_secrets(config.secrets)

    logging.getLogger("apprise").warning(f"Telegram bot {BOT_TOKEN} was refused")

    [line] = [json.loads(text) for text in output.getvalue().splitlines()]
    assert line["event"] == "Telegram bot *** was refused"
    assert BOT_TOKEN not in output.getvalue()
    assert "hook" not in config.secrets
    assert redact("POST json://127.0.0.1:9/hook") == "POST json://127.0.0.1:9/hook"


def test_a_user_part_as_long_as_a_token_is_one() -> None:
    found = notifier_secrets(
        "pover://uQiRzpo4DXghDmr9QzzfQu27cmVRsG@azGDORePK8gMaC0QOYAMyEEuzJnyUi", JSON_SCHEMES
    )
    assert found == ["uQiRzpo4DXghDmr9QzzfQu27cmVRsG", "azGDORePK8gMaC0QOYAMyEEuzJnyUi"]
