"""``/metrics`` (Prometheus text format) on a listener of its own, over real HTTP, on SQLite and PostgreSQL: the
families after some ingest and some queries, counts that match what was sent, no identifier as a label value, and
the public port never answering it. Also ``serve --metrics-port`` as a process, and ``--workers 2`` summing its
workers."""

from __future__ import annotations

import json
import random
import re
import socket
import urllib.request
from pathlib import Path

import aiohttp
import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from tests.factories import event, make_uscc
from tests.gateway.conftest import (
    PROBLEM_JSON,
    TEST_MASTER_KEY,
    Gateway,
    admin,
    assert_problem,
    backend_of,
    eventually,
    free_port,
    serving,
)
from xinyong import problems
from xinyong.webhooks import SigningSecret, signature_headers
from xinyong_gateway.metrics import STATE_FAMILIES, GatewayMetrics, LabelledChildren
from xinyong_gateway.settings import GatewaySettings

RUN_PROJECTOR = False
"""These tests project the inbox themselves, when they choose."""

INGEST_ROUTE = "/v1/webhooks/{source_id}"
DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "xinyong-gateway.json"


@pytest.fixture
def gateway_settings(database_url: str) -> GatewaySettings:
    """The test gateway with metrics on, on a port of its own."""
    return GatewaySettings(
        database_url=database_url,
        master_key=TEST_MASTER_KEY,
        source_refresh_interval=0.2,
        log_format="json",
        projector=False,
        metrics_port=free_port(),
    )


def parse(text: str) -> dict[str, list[Sample]]:
    """The samples of each family of a Prometheus text exposition, by family name."""
    return {family.name: family.samples for family in text_string_to_metric_families(text)}


def value(families: dict[str, list[Sample]], sample: str, **labels: str) -> float:
    """The value of the one sample named ``sample`` with these labels (among others)."""
    name = sample.removesuffix("_total").removesuffix("_count").removesuffix("_sum")
    found = [
        s.value
        for family, samples in families.items()
        if family == name or family.startswith(name)
        for s in samples
        if s.name == sample and all(s.labels.get(k) == v for k, v in labels.items())
    ]
    assert len(found) == 1, (sample, labels, found)
    return found[0]


async def scrape(port: int) -> str:
    async with aiohttp.ClientSession() as session, session.get(f"http://127.0.0.1:{port}/metrics") as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        return await response.text()


async def test_metrics_show_every_family_with_counts_of_what_was_sent_and_no_identifier_as_a_label(
    gateway: Gateway,
) -> None:
    marketplace = await gateway.add_source("marketplace")
    courier = await gateway.add_source("courier")
    merchant = {"id_type": "uscc", "id": make_uscc(random.Random(2301)), "name": "指标网店"}
    body = event("listing.violation", merchant=merchant, kind="counterfeit", confirmed=True)
    assert (await gateway.post(marketplace, body, webhook_id="msg_metrics_1")).status == 202
    assert (await gateway.post(marketplace, body, webhook_id="msg_metrics_1")).status == 200
    forged = await gateway.post(marketplace, body, webhook_id="msg_metrics_2", headers={"webhook-signature": "v1,x"})
    await assert_problem(forged, 401, problems.SIGNATURE_INVALID)
    wrong_kind = await gateway.post(courier, body, webhook_id="msg_metrics_3")
    await assert_problem(wrong_kind, 403, problems.EVENT_NOT_ALLOWED)
    unknown = await gateway.post_raw("src_nobody", json.dumps(body).encode(), {"Content-Type": "application/json"})
    await assert_problem(unknown, 404, problems.SOURCE_NOT_FOUND)
    key = await gateway.add_api_key(("screen",))
    screening = {"subjects": [{"id_type": "uscc", "id": merchant["id"]}]}
    authorised = {"Authorization": f"Bearer {key.api_key}"}
    assert (await gateway.client.post("/v1/screenings", json=screening, headers=authorised)).status == 200
    await assert_problem(await gateway.client.get("/v1/lists/changes", headers=authorised), 403, problems.SCOPE_MISSING)
    await gateway.project()

    port = gateway.settings.metrics_port
    assert port is not None
    text = await scrape(port)
    families = parse(text)

    assert value(families, "xinyong_ingest_requests_total", source_kind="marketplace", outcome="accepted") == 1
    assert value(families, "xinyong_ingest_requests_total", source_kind="marketplace", outcome="duplicate") == 1
    assert value(families, "xinyong_ingest_requests_total", source_kind="marketplace", outcome="signature-invalid") == 1
    assert (
        value(families, "xinyong_ingest_requests_total", source_kind="courier", outcome="event-type-not-allowed") == 1
    )
    assert value(families, "xinyong_ingest_requests_total", source_kind="unknown", outcome="source-not-found") == 1
    assert value(families, "xinyong_api_key_requests_total", scope="screen", outcome="ok") == 1
    assert value(families, "xinyong_api_key_requests_total", scope="changes", outcome="scope-missing") == 1
    assert value(families, "xinyong_http_request_duration_seconds_count", route=INGEST_ROUTE) == 5
    assert value(families, "xinyong_http_request_duration_seconds_count", route="/v1/screenings") == 1
    assert value(families, "xinyong_group_commit_batch_events_sum") == 2  # the event and its duplicate
    assert value(families, "xinyong_group_commit_duration_seconds_count") >= 1
    assert value(families, "xinyong_db_pool_max_connections") >= 1
    assert "xinyong_db_pool_connections" in families
    assert value(families, "xinyong_build_info", version="0.1.0") == 1
    # Read from the database: the projector has applied the one stored event to every partition.
    assert value(families, "xinyong_inbox_head_sequence") >= 1
    lags = [s for s in families["xinyong_projector_lag_events"] if s.name == "xinyong_projector_lag_events"]
    assert sorted(int(s.labels["partition"]) for s in lags) == list(range(16))
    assert all(s.value == 0 for s in lags)
    assert value(families, "xinyong_change_feed_head") >= 1
    assert value(families, "xinyong_subjects", list="black") == 1
    assert value(families, "xinyong_sources_active", source_kind="marketplace") == 1
    assert value(families, "xinyong_due_process_open_cases", kind="objection") == 0
    for family in STATE_FAMILIES:
        assert family.name in families, family.name
    assert value(families, "xinyong_outbox_backlog_notifications", subscription_state="active") == 0

    identifiers = {marketplace.source_id, courier.source_id, "src_nobody", key.record.key_id, merchant["id"]}
    identifiers |= {"msg_metrics_1", "msg_metrics_2", "msg_metrics_3"}
    label_values = {v for samples in families.values() for s in samples for v in s.labels.values()}
    assert not label_values & identifiers
    assert not any(identifier in text for identifier in identifiers)


async def test_the_public_port_does_not_serve_metrics(gateway: Gateway) -> None:
    response = await gateway.client.get("/metrics")
    await assert_problem(response, 404, problems.NOT_FOUND)
    port = gateway.settings.metrics_port
    assert port is not None and port != gateway.client.port
    assert "xinyong_http_request_duration_seconds" in await scrape(port)  # the listener of its own answers


async def test_the_state_read_is_reused_within_its_interval_and_follows_the_projector(gateway: Gateway) -> None:
    marketplace = await gateway.add_source("marketplace")
    merchant = {"id_type": "uscc", "id": make_uscc(random.Random(2302)), "name": "滞后网店"}
    body = event("listing.violation", merchant=merchant, kind="counterfeit", confirmed=True)
    assert (await gateway.post(marketplace, body, webhook_id="msg_lag_1")).status == 202
    port = gateway.settings.metrics_port
    assert port is not None
    before = parse(await scrape(port))
    behind = [s for s in before["xinyong_projector_lag_events"] if s.name == "xinyong_projector_lag_events"]
    assert any(s.value >= 1 for s in behind)  # nothing projected yet: every partition is behind the inbox
    assert all(s.value >= 0 for s in before["xinyong_projector_lag_seconds"])
    await gateway.project()
    again = parse(await scrape(port))  # within STATE_INTERVAL: the same reading
    assert again["xinyong_projector_lag_events"] == before["xinyong_projector_lag_events"]


def test_serve_answers_metrics_on_its_own_listener_never_on_the_public_port(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'gateway.db'}"
    (source,) = admin(url, ("sources", "add", "--kind", "marketplace", "--name", "metrics"))
    metrics_port = free_port()
    with serving(url, tmp_path / "gateway.log", "--metrics-port", str(metrics_port)) as (port, _):
        body = json.dumps(event("listing.violation", confirmed=True)).encode()
        headers = {**signature_headers(SigningSecret.parse(source["secret"]), "msg_serve_1", body)}
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/v1/webhooks/{source['source_id']}",
            data=body,
            headers={**headers, "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request) as answer:  # noqa: S310 -- our localhost server
            assert answer.status == 202
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics")
        refused.value.close()
        assert (refused.value.code, refused.value.headers["Content-Type"]) == (404, PROBLEM_JSON)
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics") as answer:
            families = parse(answer.read().decode())
    assert value(families, "xinyong_ingest_requests_total", source_kind="marketplace", outcome="accepted") == 1


def test_serve_refuses_a_metrics_port_that_is_the_public_port(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from xinyong_gateway.cli import main

    url = f"sqlite:///{tmp_path / 'gateway.db'}"
    admin(url)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XINYONG_MASTER_KEY", TEST_MASTER_KEY)
        assert main(["--db", url, "serve", "--port", "8089", "--metrics-port", "8089"]) == 2
    assert "--metrics-port must differ from --port" in capsys.readouterr().err


@pytest.mark.slow
def test_serve_with_two_workers_sums_both_workers_counts(postgres_url: str, tmp_path: Path) -> None:
    """Requests over new connections until both workers have answered (the kernel spreads new connections over the
    workers; each worker's request ids have a prefix of their own); ``/metrics`` (worker 1) counts every one of them,
    and the multiprocess folder is gone after the stop."""
    (source,) = admin(postgres_url, ("sources", "add", "--kind", "marketplace", "--name", "workers"))
    secret = SigningSecret.parse(source["secret"])
    metrics_port = free_port()
    log = tmp_path / "gateway.log"
    prefixes: set[str] = set()
    sent = 0
    with serving(postgres_url, log, "--workers", "2", "--metrics-port", str(metrics_port), "--no-projector") as (
        port,
        _,
    ):
        while (len(prefixes) < 2 or sent < 40) and sent < 1000:  # bounded: the spread is the kernel's, not ours
            body = json.dumps(event("listing.violation", confirmed=True)).encode()
            request = urllib.request.Request(
                f"http://127.0.0.1:{port}/v1/webhooks/{source['source_id']}",
                data=body,
                headers={**signature_headers(secret, f"msg_w_{sent}", body), "Content-Type": "application/json"},
            )
            with urllib.request.urlopen(request) as answer:  # noqa: S310 -- our localhost server
                assert answer.status == 202
                prefixes.add(answer.headers["X-Request-Id"].rsplit("-", 1)[0])
            sent += 1
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics") as answer:
            families = parse(answer.read().decode())
    assert len(prefixes) == 2, f"only one worker answered {sent} requests on new connections"
    assert value(families, "xinyong_ingest_requests_total", source_kind="marketplace", outcome="accepted") == sent
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    pids = {line["pid"] for line in lines if line.get("event") == "request"}
    assert len(pids) == 2, "both workers logged the requests they answered"


async def test_the_badge_standings_kept_in_memory_are_counted(gateway: Gateway, database_url: str) -> None:
    """``xinyong_public_badge_standings``: how many organisations the process's book of badge standings holds
    (``web.public.standings``), which follows what the store commits; 0 on PostgreSQL, which keeps no book."""
    rng = random.Random(5)
    shops = [{"id_type": "uscc", "id": make_uscc(rng), "name": f"海州区第{n}百货店"} for n in range(2)]
    await gateway.post_and_project([event("merchant.registered", merchant=shop) for shop in shops], "msg_book")
    port = gateway.settings.metrics_port
    assert port is not None
    expected = 0 if backend_of(database_url) == "postgresql" else 2

    async def counted() -> bool:
        return value(parse(await scrape(port)), "xinyong_public_badge_standings") == expected

    await eventually(counted)


def test_the_dashboard_queries_only_families_the_gateway_defines() -> None:
    """Every metric a panel of deploy/grafana/xinyong-gateway.json asks for is an instrument, a family read from the
    database: a renamed family breaks this test, not the dashboard."""
    instruments = {family.name for family in GatewayMetrics("test").registry.collect()}
    known = instruments | {family.name for family in STATE_FAMILIES}
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    asked = set()
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            for name in re.findall(r"\b(xinyong_[a-z_]+)", target["expr"]):
                asked.add(name)
                assert re.sub(r"_(total|bucket|count|sum)$", "", name) in known, (panel["title"], name)
    assert {"xinyong_outbox_backlog_notifications", "xinyong_deliveries_total"} <= asked  # the outbox panels


@given(st.lists(st.tuples(st.sampled_from(["marketplace", "courier", "unknown"]), st.text(max_size=12)), max_size=20))
def test_the_cached_children_are_the_ones_labels_gives(pairs: list[tuple[str, str]]) -> None:
    """``LabelledChildren`` (a dict in front of ``labels()``, for the hot path) counts exactly as ``labels()`` does."""
    metrics = GatewayMetrics("test")
    for kind, outcome in pairs:
        metrics.ingest(kind, outcome).inc()
    counts: dict[tuple[str, str], int] = {}
    for pair in pairs:
        counts[pair] = counts.get(pair, 0) + 1
    for (kind, outcome), count in counts.items():
        assert metrics.ingest(kind, outcome) is metrics.ingest(kind, outcome)
        assert (
            metrics.registry.get_sample_value(
                "xinyong_ingest_requests_total", {"source_kind": kind, "outcome": outcome}
            )
            == count
        )
    assert isinstance(metrics.ingest, LabelledChildren)


def test_serve_says_which_option_names_a_metrics_port_in_use(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from xinyong_gateway.cli import main

    url = f"sqlite:///{tmp_path / 'gateway.db'}"
    admin(url)
    with socket.socket() as taken, pytest.MonkeyPatch.context() as patch:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        patch.setenv("XINYONG_MASTER_KEY", TEST_MASTER_KEY)
        port = str(taken.getsockname()[1])
        assert main(["--db", url, "serve", "--port", str(free_port()), "--metrics-port", port]) == 1
    assert f"Port {port} on 127.0.0.1 is in use" in (err := capsys.readouterr().err) and "(--metrics-port)" in err
