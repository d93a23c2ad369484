"""Render the Grafana dashboard (deploy/grafana/xinyong-gateway.json) from a real run, as a PNG (docs/dashboard.png).

Grafana itself cannot be installed here (it is not on PyPI or in Debian), so this script plays both Prometheus and
Grafana for a few minutes, with real parts only:

1. it starts ``xinyong-gateway serve --metrics-port`` (projector on) on a scratch SQLite file, with a marketplace, a
   courier, a regulator and an API key made through the command line;
2. it sends traffic as those sources would, in phases: a ramp of accepted events, retries (duplicates), a sender with
   a wrong secret, an unknown source, events that fail their schema, screenings and change-feed reads, a key without
   the scope, and objections (one filed long enough ago that its reply is late);
3. it scrapes ``/metrics`` every ``--scrape`` seconds, as Prometheus would;
4. it evaluates every panel's own PromQL (the subset the dashboard uses: ``rate``, ``sum``/``max`` ``by``,
   ``histogram_quantile``, selectors with ``=`` matchers; anything else is an error) over the scrapes, and draws the
   panels where the dashboard's ``gridPos`` puts them, with matplotlib. A panel whose metrics the gateway does not
   expose yet (the outbox's, issue #20) says "no data", as Grafana would.

    .venv/bin/python bench/dashboard.py                      # about 3 minutes; writes docs/dashboard.png
    .venv/bin/python bench/dashboard.py --duration 60 --out /tmp/d.png
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from prometheus_client.parser import text_string_to_metric_families

from ingest import _make_uscc as make_uscc
from xinyong.webhooks import SigningSecret, signature_headers

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
BIN = Path(sys.executable).parent
DASHBOARD = ROOT / "deploy" / "grafana" / "xinyong-gateway.json"

Labels = frozenset[tuple[str, str]]
Series = dict[Labels, float]


# -- the scrapes ---------------------------------------------------------------------------------------------------
@dataclass
class Scrape:
    at: float
    samples: dict[str, dict[Labels, float]]
    """Sample name → label set → value."""


def parse_scrape(at: float, text: str) -> Scrape:
    samples: dict[str, dict[Labels, float]] = defaultdict(dict)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[sample.name][frozenset(sample.labels.items())] = sample.value
    return Scrape(at, dict(samples))


# -- a PromQL subset -----------------------------------------------------------------------------------------------
_TOKEN = re.compile(
    r"\s*(?:(?P<number>\d+(?:\.\d+)?)|(?P<name>[A-Za-z_][A-Za-z0-9_]*)|(?P<string>\"[^\"]*\")|(?P<op>[(){}\[\],=]))"
)


def _tokens(text: str) -> Iterator[str]:
    position = 0
    while position < len(text.rstrip()):
        match = _TOKEN.match(text, position)
        if match is None:
            raise ValueError(f"cannot read {text[position:]!r}")
        position = match.end()
        yield match.group(match.lastgroup or "")


class Query:
    """One PromQL expression of the subset the dashboard uses, evaluated over recorded scrapes."""

    def __init__(self, text: str) -> None:
        self.text = text
        self._tokens = list(_tokens(text))
        self._at = 0
        self._tree = self._expr()
        if self._at != len(self._tokens):
            raise ValueError(f"unexpected {self._tokens[self._at]!r} in {text!r}")

    def _next(self, expected: str | None = None) -> str:
        token = self._tokens[self._at]
        if expected is not None and token != expected:
            raise ValueError(f"expected {expected!r}, found {token!r} in {self.text!r}")
        self._at += 1
        return token

    def _expr(self) -> tuple[Any, ...]:
        name = self._next()
        if name in ("sum", "max"):
            by: tuple[str, ...] | None = None
            if self._tokens[self._at] == "by":
                self._next()
                self._next("(")
                by = tuple(self._labels_list())
            self._next("(")
            inner = self._expr()
            self._next(")")
            return ("aggregate", name, by, inner)
        if name == "rate":
            self._next("(")
            selector = self._selector(self._next())
            self._next("[")
            window = self._next()
            unit = self._next()
            self._next("]")
            self._next(")")
            return ("rate", selector, float(window) * {"s": 1, "m": 60}[unit])
        if name == "histogram_quantile":
            self._next("(")
            quantile = float(self._next())
            self._next(",")
            inner = self._expr()
            self._next(")")
            return ("quantile", quantile, inner)
        return ("select", self._selector(name))

    def _labels_list(self) -> list[str]:
        labels = []
        while (item := self._next()) != ")":
            if item != ",":
                labels.append(item)
        return labels

    def _selector(self, name: str) -> tuple[str, dict[str, str]]:
        matchers: dict[str, str] = {}
        if self._at < len(self._tokens) and self._tokens[self._at] == "{":
            self._next()
            while (label := self._next()) != "}":
                if label == ",":
                    continue
                self._next("=")
                matchers[label] = self._next().strip('"')
        return name, matchers

    def at(self, scrapes: list[Scrape], index: int) -> Series:
        return _evaluate(self._tree, scrapes, index)


def _matching(scrape: Scrape, selector: tuple[str, dict[str, str]]) -> Series:
    name, matchers = selector
    return {
        labels: value
        for labels, value in scrape.samples.get(name, {}).items()
        if all((key, wanted) in labels for key, wanted in matchers.items())
    }


def _evaluate(tree: tuple[Any, ...], scrapes: list[Scrape], index: int) -> Series:
    kind = tree[0]
    if kind == "select":
        return _matching(scrapes[index], tree[1])
    if kind == "rate":
        _, selector, window = tree
        now = scrapes[index].at
        inside = [scrape for scrape in scrapes[: index + 1] if scrape.at >= now - window]
        if len(inside) < 2:
            return {}
        first, last = _matching(inside[0], selector), _matching(inside[-1], selector)
        span = inside[-1].at - inside[0].at
        return {labels: max(0.0, value - first.get(labels, 0.0)) / span for labels, value in last.items()}
    if kind == "aggregate":
        _, how, by, inner = tree
        groups: dict[Labels, list[float]] = defaultdict(list)
        for labels, value in _evaluate(inner, scrapes, index).items():
            kept = frozenset((k, v) for k, v in labels if by is not None and k in by)
            groups[kept].append(value)
        return {labels: (sum(values) if how == "sum" else max(values)) for labels, values in groups.items()}
    if kind == "quantile":
        _, quantile, inner = tree
        buckets: dict[Labels, list[tuple[float, float]]] = defaultdict(list)
        for labels, value in _evaluate(inner, scrapes, index).items():
            bound = dict(labels).get("le")
            if bound is not None:
                buckets[frozenset((k, v) for k, v in labels if k != "le")].append((float(bound), value))
        return {
            labels: result
            for labels, points in buckets.items()
            if not math.isnan(result := _histogram_quantile(quantile, sorted(points)))
        }
    raise ValueError(kind)


def _histogram_quantile(quantile: float, buckets: list[tuple[float, float]]) -> float:
    """Prometheus's ``histogram_quantile`` over cumulative ``(upper bound, count)`` buckets."""
    if not buckets or buckets[-1][1] <= 0:
        return math.nan
    rank = quantile * buckets[-1][1]
    lower, below = 0.0, 0.0
    for upper, count in buckets:
        if count >= rank:
            if math.isinf(upper):
                return lower
            return lower + (upper - lower) * ((rank - below) / (count - below) if count > below else 0)
        lower, below = upper, count
    return lower


# -- drawing -------------------------------------------------------------------------------------------------------
_BACKGROUND, _PANEL, _TEXT, _GRID = "#111217", "#181b1f", "#ccccdc", "#2c3235"
_COLOURS = ["#73bf69", "#f2cc0c", "#8ab8ff", "#ff780a", "#f2495c", "#5794f2", "#b877d9", "#705da0", "#37872d"]


def _legend(template: str, labels: Labels) -> str:
    values = dict(labels)
    return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: values.get(m.group(1), ""), template).strip() or "value"


def _format(unit: str) -> Any:
    def seconds(value: float, _: Any) -> str:
        return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.1f} s"

    def plain(value: float, _: Any) -> str:
        return f"{value:,.0f}" if abs(value) >= 10 else f"{value:.2g}"

    return seconds if unit == "s" else plain


def render(dashboard: dict[str, Any], scrapes: list[Scrape], out: Path, note: str) -> None:
    panels = dashboard["panels"]
    rows = max(panel["gridPos"]["y"] + panel["gridPos"]["h"] for panel in panels)
    figure = plt.figure(figsize=(20, rows * 0.42 + 0.8), facecolor=_BACKGROUND)
    figure.suptitle(f"{dashboard['title']}  ·  {note}", color=_TEXT, x=0.01, ha="left", fontsize=13)
    height = rows * 0.42 + 0.8
    top = 1 - 0.6 / height  # below the title
    start = scrapes[0].at
    times = [(scrape.at - start) / 60 for scrape in scrapes]
    for panel in panels:
        pos = panel["gridPos"]
        # gridPos in Grafana's 24 columns and rows, with room for each panel's title and axis labels
        left, width = 0.035 + pos["x"] / 24 * 0.96, pos["w"] / 24 * 0.96 - 0.03
        row = top / rows
        bottom = top - (pos["y"] + pos["h"]) * row + 0.55 * row
        axes = figure.add_axes((left, bottom, width, pos["h"] * row - 1.3 * row))
        axes.set_facecolor(_PANEL)
        axes.set_title(panel["title"], color=_TEXT, fontsize=10, loc="left")
        axes.tick_params(colors=_TEXT, labelsize=7)
        axes.grid(color=_GRID, linewidth=0.5)
        for spine in axes.spines.values():
            spine.set_color(_GRID)
        unit = panel["fieldConfig"]["defaults"].get("unit", "short")
        axes.yaxis.set_major_formatter(plt.FuncFormatter(_format(unit)))
        drawn = 0
        for target in panel["targets"]:
            query = Query(target["expr"])
            lines: dict[Labels, list[float]] = defaultdict(lambda: [math.nan] * len(scrapes))
            for index in range(len(scrapes)):
                for labels, value in query.at(scrapes, index).items():
                    lines[labels][index] = value
            for labels, values in sorted(lines.items(), key=lambda item: sorted(item[0])):
                colour = _COLOURS[drawn % len(_COLOURS)]
                axes.plot(times, values, color=colour, linewidth=1.4, label=_legend(target["legendFormat"], labels))
                drawn += 1
        if drawn:
            axes.legend(fontsize=6.5, facecolor=_PANEL, edgecolor=_GRID, labelcolor=_TEXT, loc="upper left", ncol=2)
            axes.set_ylim(bottom=0)
        else:
            axes.text(0.5, 0.5, "No data", color="#8e8e8e", ha="center", va="center", transform=axes.transAxes)
        axes.set_xlim(times[0], times[-1])
        axes.set_xlabel("minutes", color=_TEXT, fontsize=7)
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=80, facecolor=_BACKGROUND)


# -- the run -------------------------------------------------------------------------------------------------------
def run_cli(env: dict[str, str], *args: str) -> Any:
    done = subprocess.run(
        [str(BIN / "xinyong-gateway"), "--json", *args], capture_output=True, text=True, check=True, env=env
    )
    return json.loads(done.stdout)


def _event(event_type: str, **data: Any) -> bytes:
    now = datetime.now(UTC)
    return json.dumps({"type": event_type, "timestamp": now.isoformat(), "data": data}, ensure_ascii=False).encode()


class Traffic:
    """Senders and readers of the demonstration, over real HTTP."""

    def __init__(self, base: str, sources: dict[str, Any], api_key: str, seed: int) -> None:
        self.base = base
        self.sources = sources
        self.api_key = api_key
        self.rng = random.Random(seed)
        self.merchants = [
            {"id_type": "uscc", "id": make_uscc(self.rng), "name": f"连云港{n:02d}号网店"} for n in range(60)
        ]
        self.sent = 0

    async def post(self, session: aiohttp.ClientSession, kind: str, body: bytes, webhook_id: str | None = None) -> None:
        source = self.sources[kind]
        self.sent += 1
        webhook_id = webhook_id or f"demo_{self.sent:07d}"
        secret = SigningSecret.parse(source["secret"])
        headers = {**signature_headers(secret, webhook_id, body), "Content-Type": "application/json"}
        async with session.post(f"{self.base}/v1/webhooks/{source['source_id']}", data=body, headers=headers) as r:
            await r.read()

    def fact(self) -> tuple[str, bytes]:
        merchant = self.rng.choice(self.merchants)
        at = (datetime.now(UTC) - timedelta(minutes=5)).isoformat()
        if self.rng.random() < 0.5:
            return "courier", _event(
                "delivery.recorded",
                waybill_no=f"W{self.sent:09d}",
                courier={"id_type": "uscc", "id": self.merchants[0]["id"]},
                merchant=merchant,
                status=self.rng.choice(["delivered"] * 8 + ["empty_parcel", "lost"]),
                occurred_at=at,
            )
        if self.rng.random() < 0.15:
            kind = self.rng.choice(["counterfeit", "false_advertising"])
            return "marketplace", _event(
                "listing.violation",
                case_id=f"L{self.sent}",
                merchant=merchant,
                listing_id=f"item-{self.sent}",
                kind=kind,
                confirmed=True,
                found_at=at,
            )
        return "marketplace", _event("commitment.published", merchant=merchant, commitment_id=f"c{self.sent}",
                                     items=["正品保障"], published_at=at)  # fmt: skip


async def drive(traffic: Traffic, duration: float, metrics_url: str, scrape_every: float) -> list[Scrape]:
    scrapes: list[Scrape] = []
    started = time.monotonic()
    async with aiohttp.ClientSession() as session:

        async def scraper() -> None:
            while time.monotonic() - started < duration:
                async with session.get(metrics_url) as answer:
                    scrapes.append(parse_scrape(time.monotonic(), await answer.text()))
                await asyncio.sleep(scrape_every)

        scraping = asyncio.create_task(scraper())
        objections_filed = False
        while (elapsed := time.monotonic() - started) < duration:
            phase = elapsed / duration
            rate = 40 + 260 * min(1.0, phase * 2) if phase < 0.75 else 120  # a ramp, a plateau, a calmer end
            tick = time.monotonic()
            jobs = []
            for _ in range(int(rate / 4)):
                kind, body = traffic.fact()
                webhook_id = f"demo_{traffic.rng.getrandbits(64):016x}"
                jobs.append(traffic.post(session, kind, body, webhook_id))
                if traffic.rng.random() < 0.05:  # a retry of the same event: a duplicate
                    jobs.append(traffic.post(session, kind, body, webhook_id))
            if traffic.rng.random() < 0.3:
                jobs.append(traffic.post(session, "marketplace", _event("listing.violation", merchant={})))
            if traffic.rng.random() < 0.2 and 0.4 < phase < 0.6:  # a sender whose secret is out of date
                wrong = {**traffic.sources["marketplace"], "secret": str(SigningSecret.generate())}
                jobs.append(Traffic(traffic.base, {"marketplace": wrong}, "", 0).post(session, "marketplace", b"{}"))
            if traffic.rng.random() < 0.1:
                jobs.append(session.post(f"{traffic.base}/v1/webhooks/src_unknown", data=b"{}").__aenter__())
            jobs.append(screen(session, traffic))
            if traffic.rng.random() < 0.5:
                jobs.append(feed(session, traffic, traffic.api_key if traffic.rng.random() < 0.9 else "xyk_bad"))
            if not objections_filed and phase > 0.5:
                objections_filed = True
                jobs.append(file_objections(session, traffic))
            for result in await asyncio.gather(*jobs, return_exceptions=True):
                if isinstance(result, aiohttp.ClientResponse):
                    result.release()
            await asyncio.sleep(max(0.0, 0.25 - (time.monotonic() - tick)))
        await scraping
    return scrapes


async def screen(session: aiohttp.ClientSession, traffic: Traffic) -> None:
    subjects = [{"id_type": "uscc", "id": m["id"]} for m in traffic.rng.sample(traffic.merchants, 20)]
    headers = {"Authorization": f"Bearer {traffic.api_key}"}
    async with session.post(f"{traffic.base}/v1/screenings", json={"subjects": subjects}, headers=headers) as r:
        await r.read()


async def feed(session: aiohttp.ClientSession, traffic: Traffic, key: str) -> None:
    headers = {"Authorization": f"Bearer {key}"}
    async with session.get(f"{traffic.base}/v1/lists/changes?limit=100", headers=headers) as r:
        await r.read()


async def file_objections(session: aiohttp.ClientSession, traffic: Traffic) -> None:
    """A regulator's penalty on one merchant, then two objections to it: one filed 40 days ago (its reply is late)."""
    merchant = traffic.merchants[1]
    long_ago = (datetime.now(UTC) - timedelta(days=60)).isoformat()
    penalty = _event("penalty.imposed", decision_no="连市监罚〔2026〕7号", subject=merchant,
                     authority="连云港市市场监督管理局", severity="serious", violation="虚假宣传",
                     decided_at=long_ago)  # fmt: skip
    await traffic.post(session, "regulator", penalty)
    await asyncio.sleep(3)  # the projector makes the record
    headers = {"Authorization": f"Bearer {traffic.api_key}"}
    async with session.post(
        f"{traffic.base}/v1/screenings", json={"subjects": [{"id_type": "uscc", "id": merchant["id"]}]}, headers=headers
    ) as answer:
        reasons = (await answer.json())["results"][0]["reasons"]
    if not reasons:
        return
    for n, days in enumerate((40, 10)):
        filed = (datetime.now(UTC) - timedelta(days=days)).isoformat()
        body = _event("objection.filed", objection_id=f"O-demo-{n}", subject=merchant,
                      record_id=reasons[0]["record_id"], grounds="处罚对象有误", filed_at=filed)  # fmt: skip
        await traffic.post(session, "regulator", body)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=180.0, help="seconds of traffic (default 180)")
    parser.add_argument("--scrape", type=float, default=3.0, help="seconds between scrapes (default 3)")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "dashboard.png")
    parser.add_argument("--seed", type=int, default=23)
    args = parser.parse_args()
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    for panel in dashboard["panels"]:  # every query parses before anything starts
        for target in panel["targets"]:
            Query(target["expr"])
    scratch = Path(tempfile.mkdtemp(prefix="xinyong-dashboard-"))
    env = {name: value for name, value in os.environ.items() if not name.startswith(("XINYONG_", "PROMETHEUS_"))}
    env["XINYONG_MASTER_KEY"] = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
    env["XINYONG_DATABASE_URL"] = f"sqlite:///{scratch / 'gateway.db'}"
    process = None
    try:
        run_cli(env, "migrate")
        sources = {
            kind: run_cli(env, "sources", "add", "--kind", kind, "--name", f"demo {kind}", "--rate", "100000")
            for kind in ("marketplace", "courier", "regulator")
        }
        key = run_cli(env, "keys", "add", "--name", "demo", "--scopes", "screen,changes")
        port, metrics_port = _free_port(), _free_port()
        with (scratch / "gateway.log").open("wb") as log:
            process = subprocess.Popen(
                [str(BIN / "xinyong-gateway"), "serve", "--port", str(port), "--metrics-port", str(metrics_port)],
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**env, "XINYONG_LOG_FORMAT": "json"},
            )
        _wait_ready(f"http://127.0.0.1:{port}/readyz")
        traffic = Traffic(f"http://127.0.0.1:{port}", sources, key["api_key"], args.seed)
        metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"
        print(f"gateway on :{port}, /metrics on :{metrics_port}; {args.duration:.0f} s of traffic …", flush=True)
        scrapes = asyncio.run(drive(traffic, args.duration, metrics_url, args.scrape))
        note = f"a real run: {traffic.sent:,} requests in {args.duration:.0f} s, /metrics scraped {len(scrapes)} times"
        render(dashboard, scrapes, args.out, note)
        print(f"{len(scrapes)} scrapes; wrote {args.out}")
    finally:
        if process is not None:
            process.terminate()
            process.wait(timeout=30)
        shutil.rmtree(scratch, ignore_errors=True)
    return 0


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_ready(url: str) -> None:
    import urllib.request

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as answer:  # noqa: S310 -- our localhost server
                if answer.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise SystemExit("the gateway did not become ready within 30 s")


if __name__ == "__main__":
    raise SystemExit(main())
