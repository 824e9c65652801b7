"""Fuzzing the webhook and the control API of a real daemon: 10 000 generated requests.

Rules, checked after every request (see ``fuzz_harness``): no answer is a 5xx; a rejected
request (400, 401, 404, 405, 413 …) changes nothing at all, a declined one (409) at most adds
the audit line that says so; and neither the API token nor any ``${ENV}`` value of the config
ever shows up in the daemon's log, however the requests carry them.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from urllib.parse import quote, urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.surfaces.fuzz_harness import HOOK_KEY, MAX_BODY, TOKEN, FuzzHarness, FuzzRequest

WEBHOOK_EXAMPLES = 4000
CONTROL_EXAMPLES = 4000
READ_EXAMPLES = 2000
FUZZ_SETTINGS = settings(
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
SECRETS = (TOKEN, HOOK_KEY)
METHODS = ("GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS")
# Offsets Alertmanager may write (RFC 3339: whole minutes); st.timezones() costs 8 ms a draw.
OFFSETS = (UTC, *(timezone(timedelta(minutes=m)) for m in (60, -300, 330, 345, -720, 840)))

# --- building blocks --------------------------------------------------------------------------

# Header values must be latin-1 without line breaks, or the client refuses to send them.
header_text = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=40)
secretish = st.sampled_from([*SECRETS, "app", "db", "critical"]) | st.text(max_size=12)
# A lone surrogate is valid JSON ("\udcff" escaped) but no valid UTF-8 string.
odd_text = st.sampled_from(["\udcff", "\x00", "\u202e", "a" * 5000])

RIGHT_AUTH = f"Bearer {TOKEN}"
authorization = st.one_of(
    st.sampled_from(
        [
            *(RIGHT_AUTH, f"bearer   {TOKEN}  ", None, f"Bearer {TOKEN}x", f"Bearer {TOKEN[:-1]}"),
            *(f"Basic {TOKEN}", TOKEN, "Bearer "),
        ]
    ),
    st.builds(lambda t: f"Bearer {t}", header_text),
)


def headers(auth: str | None, content_type: str | None = "application/json") -> dict[str, str]:
    found = {} if auth is None else {"Authorization": auth}
    if content_type is not None:
        found["Content-Type"] = content_type
    return found


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | secretish | odd_text,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)


def encode(value: Any) -> bytes:
    return json.dumps(value).encode()


def deep_nesting(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


raw_bodies = st.one_of(
    st.binary(max_size=64),
    st.integers(2, 50_000).map(deep_nesting),  # up to the body limit: parsers recurse
    st.just(b"x" * (MAX_BODY + 1)),
    st.just(b'{"version": "4", "alerts": [' + b"1," * 9000 + b"1]}"),  # over the limit
    st.just('{"reason": "\udcff"}'.encode("utf-8", "surrogatepass")),
    st.just(b"\xff\xfe{\x00}\x00"),
)

good_timestamps = st.one_of(
    st.builds(
        lambda moment, offset: moment.replace(tzinfo=offset).isoformat(),
        st.datetimes(min_value=datetime(1970, 1, 1), max_value=datetime(2100, 1, 1)),
        st.sampled_from(OFFSETS),
    ),
    st.sampled_from(
        [
            "2026-01-01T00:00:00Z",
            "2026-01-01T01:00:00+01:00",
            "0001-01-01T00:00:00Z",
            "0001-01-01T00:00:00+14:00",
            "9999-12-31T23:59:59-12:00",
            "2026-01-01T00:00:00.123456789Z",
        ]
    ),
)
timestamps = st.one_of(
    good_timestamps,
    st.datetimes().map(lambda d: d.isoformat()),  # no offset
    st.sampled_from(["yesterday", "", "2026-13-01T00:00:00Z"]),
    json_values,
)
labels = st.dictionaries(
    st.sampled_from(["alertname", "service", "severity", "team"]) | st.text(max_size=6),
    st.sampled_from(["app", "db", "AppDown", "critical"]) | secretish,
    max_size=4,
)


def alert_objects(
    starts: st.SearchStrategy[Any], extra: st.SearchStrategy[Any]
) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {
            "status": st.sampled_from(["firing", "firing", "resolved"]),
            "labels": labels,
            "startsAt": starts,
            "fingerprint": st.sampled_from(["a1", "b2", "c3"]) | st.text(min_size=1, max_size=20),
        },
        optional={
            "annotations": st.dictionaries(
                st.sampled_from(["summary", "x"]), secretish, max_size=2
            ),
            "endsAt": starts,
            "generatorURL": secretish,
            "extra": extra,
        },
    )


def webhook_objects(
    version: st.SearchStrategy[Any],
    status: st.SearchStrategy[Any],
    starts: st.SearchStrategy[Any],
    extra: st.SearchStrategy[Any],
) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {
            "version": version,
            "status": status,
            "alerts": st.lists(alert_objects(starts, extra), max_size=3),
        },
        optional={
            "receiver": secretish,
            "groupKey": secretish,
            "commonLabels": labels,
            "truncatedAlerts": st.integers(),
            "notification_reason": extra,
        },
    )


# Payloads Alertmanager could send, and payloads with any field of any shape.
valid_payloads = webhook_objects(
    st.just("4"), st.sampled_from(["firing", "resolved"]), good_timestamps, secretish
)
odd_payloads = webhook_objects(
    st.sampled_from(["4", "3", 4, None]),
    st.sampled_from(["firing", "unknown", ""]),
    timestamps,
    json_values,
)


@st.composite
def mutated(draw: st.DrawFn, base: st.SearchStrategy[dict[str, Any]]) -> dict[str, Any]:
    """A valid-looking object with one key dropped or one value replaced by anything."""
    value = dict(draw(base))
    if value:
        key = draw(st.sampled_from(sorted(value)))
        if draw(st.booleans()):
            del value[key]
        else:
            value[key] = draw(json_values)
    return value


def quoted(name: str) -> str:
    return quote(name, safe="", errors="surrogatepass")


target_names = st.one_of(
    st.sampled_from(["app", "app", "db", "nope", "APP", "app ", "..", TOKEN, HOOK_KEY]),
    st.text(min_size=1, max_size=24),
).map(quoted)

# --- the three kinds of request ---------------------------------------------------------------


@st.composite
def webhook_requests(draw: st.DrawFn) -> FuzzRequest:
    if draw(st.booleans()):  # what Alertmanager sends: it must get past the door
        return FuzzRequest(
            "POST", "/hooks/alertmanager", headers(RIGHT_AUTH), draw(valid_payloads.map(encode))
        )
    body = draw(
        st.one_of(
            valid_payloads.map(encode),
            odd_payloads.map(encode),
            mutated(valid_payloads).map(encode),
            json_values.map(encode),
            raw_bodies,
        )
    )
    content_type = draw(st.sampled_from(["application/json", "text/plain", None]))
    method = draw(st.sampled_from(["POST"] * 6 + ["GET", "PUT"]))
    path = draw(st.sampled_from(["/hooks/alertmanager"] * 9 + ["/hooks/alertmanager/"]))
    return FuzzRequest(method, path, headers(draw(authorization), content_type), body)


# The harness puts the real ids of the releases in place of "@release:v1@" and "@release:v2@".
release_refs = st.sampled_from(["@release:v1@", "@release:v2@", "v1", "no-such-release"])
control_bodies = st.one_of(
    st.just(b""),
    st.fixed_dictionaries(
        {}, optional={"reason": secretish | json_values, "to": release_refs | secretish}
    ).map(encode),
    st.fixed_dictionaries(
        {}, optional={"reason": secretish | json_values, "to": release_refs | json_values}
    ).map(encode),
    json_values.map(encode),
    raw_bodies,
)


@st.composite
def control_requests(draw: st.DrawFn) -> FuzzRequest:
    verb = draw(st.sampled_from(["rollback", "rollback", "freeze", "unfreeze"]))
    if draw(st.booleans()):  # what the CLI sends, to a real target
        name = draw(st.sampled_from(["app", "app", "db"]))
        fields = {"reason": secretish}
        if verb == "rollback":
            fields["to"] = release_refs
        body = draw(st.fixed_dictionaries({}, optional=fields).map(encode))
        return FuzzRequest("POST", f"/api/v1/targets/{name}/{verb}", headers(RIGHT_AUTH), body)
    method = draw(st.sampled_from(["POST"] * 8 + ["GET", "DELETE"]))
    path = f"/api/v1/targets/{draw(target_names)}/{verb}"
    return FuzzRequest(method, path, headers(draw(authorization)), draw(control_bodies))


query_values = st.one_of(
    st.integers(-(10**30), 10**30).map(str),
    st.sampled_from(["", "0", "-1", "1e3", " 5 ", "٣", "nan"]),
    secretish,
)


@st.composite
def read_requests(draw: st.DrawFn) -> FuzzRequest:
    kind = draw(st.sampled_from(["events", "target", "fixed", "random"]))
    if kind == "events":
        params = draw(
            st.dictionaries(
                st.sampled_from(["limit", "before", "target", "x"]), query_values, max_size=3
            )
        )
        query = urlencode(params, errors="surrogatepass")
        path = "/api/v1/events" + (f"?{query}" if params else "")
    elif kind == "target":
        path = f"/api/v1/targets/{draw(target_names)}"
    elif kind == "fixed":
        path = draw(
            st.sampled_from(
                ["/metrics", "/healthz", "/readyz", "/api/v1/openapi.json", "/api/v1/targets"]
            )
        )
    else:
        path = "/" + "/".join(draw(st.lists(target_names, max_size=4)))
    method = draw(st.sampled_from(["GET"] * 6 + list(METHODS)))
    return FuzzRequest(method, path, headers(draw(authorization), None), draw(control_bodies))


# --- the tests --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def harness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FuzzHarness]:
    fuzz = FuzzHarness(tmp_path_factory.mktemp("fuzz"))
    fuzz.start()
    try:
        yield fuzz
    finally:
        fuzz.close()


def fuzz(
    harness: FuzzHarness, strategy: st.SearchStrategy[FuzzRequest], examples: int
) -> Counter[int]:
    """Send ``examples`` generated requests through the harness' checks; their statuses."""
    before = Counter(harness.statuses)

    @settings(FUZZ_SETTINGS, max_examples=examples)
    @given(strategy)
    def run(request: FuzzRequest) -> None:
        harness.check(request)

    run()
    assert harness.leaked_secrets() == [], harness.log_text()[-3000:]
    return harness.statuses - before


class TestFuzzedSurface:
    """10 000 requests in all: no 5xx, no trace of a rejected one, no secret in the log."""

    def test_webhook(self, harness: FuzzHarness) -> None:
        """4000 webhook requests, most of them what Alertmanager could send."""
        statuses = fuzz(harness, webhook_requests(), WEBHOOK_EXAMPLES)
        assert statuses.total() >= WEBHOOK_EXAMPLES
        assert {200, 400, 401, 413} <= set(statuses), statuses
        assert "incident_started" in harness.log_text()  # an alert started a playbook

    def test_control_api(self, harness: FuzzHarness) -> None:
        """4000 rollback, freeze and unfreeze requests, to real targets and to nonsense."""
        statuses = fuzz(harness, control_requests(), CONTROL_EXAMPLES)
        assert statuses.total() >= CONTROL_EXAMPLES
        assert {200, 202, 400, 401, 404, 409} <= set(statuses), statuses

    def test_reads_and_stray_routes(self, harness: FuzzHarness) -> None:
        """2000 reads, odd queries and unknown paths."""
        statuses = fuzz(harness, read_requests(), READ_EXAMPLES)
        assert statuses.total() >= READ_EXAMPLES
        assert {200, 400, 404, 405} <= set(statuses), statuses
        assert WEBHOOK_EXAMPLES + CONTROL_EXAMPLES + READ_EXAMPLES == 10_000


class TestFoundByFuzzing:
    """What the fuzzing found once, pinned down so that it does not come back by chance."""

    def test_deeply_nested_json_is_a_400(self, harness: FuzzHarness) -> None:
        """A body nested deeper than the JSON parser recurses is malformed, not a crash."""
        request = FuzzRequest(
            "POST", "/hooks/alertmanager", headers(RIGHT_AUTH), deep_nesting(MAX_BODY // 2)
        )
        assert harness.check(request) == 400

    def test_lone_surrogate_is_a_400(self, harness: FuzzHarness) -> None:
        """A "\\udcff" escape is valid JSON but no UTF-8 text: refused before the store."""
        body = encode({"reason": "\udcff"})
        request = FuzzRequest("POST", "/api/v1/targets/app/freeze", headers(RIGHT_AUTH), body)
        assert harness.check(request) == 400

    def test_event_id_beyond_64_bits_is_a_400(self, harness: FuzzHarness) -> None:
        """`before` past SQLite's integers is refused, not passed on."""
        request = FuzzRequest("GET", f"/api/v1/events?before={2**63}", headers(None, None))
        assert harness.check(request) == 400

    def test_refused_manual_rollback_leaves_the_target_alone(self, harness: FuzzHarness) -> None:
        """db has nothing to roll back to: 409, and its state does not turn `breached`."""
        request = FuzzRequest("POST", "/api/v1/targets/db/rollback", headers(RIGHT_AUTH))
        assert harness.check(request) == 409
        assert harness.daemon is not None
        assert str(harness.daemon.controllers["db"].machine.state) != "breached"
