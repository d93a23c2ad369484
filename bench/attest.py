"""Attestation figures: what signing costs over the screening it is made of. Figures, not a test: nothing asserts on
time.

    .venv/bin/python bench/attest.py                       # about a minute
    .venv/bin/python bench/attest.py --requests 5000 --repeat 5 --concurrency 16

1. In this process, per operation (medians of ``--repeat`` rounds of ``--ops`` each): the gateway's keyring signing one
   status document (``SigningKeyring.sign``: JSON, Ed25519, base64url) and the SDK verifying it
   (``xinyong.verify_attestation``, JWKS parsed each time as an offline verifier would); beside them, the baseline of
   the same document serialised with ``json.dumps`` (what a screening answer costs to render).
2. Over HTTP, on a fresh SQLite gateway (``xinyong-gateway serve --no-projector``, JSON logs on) pinned to
   ``--server-cpu``, the load generator (``bench/_loadgen.py``) on ``--client-cpu``: ``POST /v1/attestations`` of one
   subject against ``POST /v1/screenings`` of the same subject (the baseline: everything but the signing), each
   ``--requests`` requests from ``--concurrency`` connections, alternating, ``--repeat`` rounds: requests per second
   and p50/p99 (medians over the rounds), and their ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import ingest
from _loadgen import LoadResult, percentile, run_closed_loop
from ingest import BIN, HOST, BenchError, free_port, pinned, run_cli, start_server
from xinyong import verify_attestation
from xinyong_gateway.access import SigningKeyring, ensure_signing_key
from xinyong_gateway.crypto import MasterKey
from xinyong_gateway.store import open_store


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ops", type=int, default=2000, help="operations per in-process round (default 2000)")
    parser.add_argument("--requests", type=int, default=3000, help="HTTP requests per round and kind (default 3000)")
    parser.add_argument("--concurrency", type=int, default=8, help="keep-alive connections (default 8)")
    parser.add_argument("--repeat", type=int, default=3, help="rounds; medians are printed (default 3)")
    parser.add_argument("--server-cpu", type=int, default=0)
    parser.add_argument("--client-cpu", type=int, default=1)
    return parser


def _document(rng: random.Random) -> dict[str, Any]:
    """A status as an attestation carries it: a black-listed shop with two reasons."""
    reason = {
        "record_id": f"rec_{rng.getrandbits(96):024x}",
        "code": "LISTING_COUNTERFEIT",
        "list": "black",
        "severity": "serious",
        "source_events": [17],
        "effective_from": "2026-11-27T10:00:00+00:00",
        "effective_until": "2029-11-26T10:00:00+00:00",
        "disputed": False,
    }
    return {
        "iss": "https://credit.example.gov.cn",
        "sub": "uscc:91320706MA1Y2N6Q47",
        "aud": "key_abcdefghijklmnop",
        "iat": 1796400000,
        "jti": f"att_{rng.getrandbits(128):032x}",
        "subject": {"id_type": "uscc", "id": "91320706MA1Y2N6Q47", "name": "假货旗舰店"},
        "list": "black",
        "grade": "D",
        "score": 45,
        "measures": ["refuse_onboarding", "close_store", "freeze_account", "public_exposure"],
        "reasons": [reason, {**reason, "code": "LISTING_VIOLATION", "list": "watch", "severity": "general"}],
        "disputed": False,
        "policy_version": "lyg-2026.4",
        "as_of": "2026-12-05T08:00:00.123456+00:00",
    }


def per_op_us(run: Any, ops: int, rounds: int) -> float:
    """The median over ``rounds`` of the mean µs per call of ``run`` (called ``ops`` times a round)."""
    means = []
    for _ in range(rounds):
        started = time.perf_counter()
        for _ in range(ops):
            run()
        means.append((time.perf_counter() - started) / ops * 1e6)
    return statistics.median(means)


def in_process(args: argparse.Namespace, scratch: Path) -> dict[str, float]:
    async def keyring() -> SigningKeyring:
        master = MasterKey.from_text(MasterKey.generate_text())
        async with open_store(f"sqlite:///{scratch / 'keys.db'}", create=True) as store:
            await store.migrate()
            await ensure_signing_key(store, master, now=datetime.now(UTC))
            ring = SigningKeyring(store, master)
            await ring.refresh()
            return ring

    ring = asyncio.run(keyring())
    document = _document(random.Random(1))
    token = ring.sign(document)
    jwks = ring.jwks.decode()
    assert verify_attestation(token, jwks).jti == document["jti"]  # noqa: S101 -- a broken setup must not be timed
    return {
        "json.dumps (baseline)": per_op_us(lambda: json.dumps(document, ensure_ascii=False), args.ops, args.repeat),
        "sign": per_op_us(lambda: ring.sign(document), args.ops, args.repeat),
        "verify": per_op_us(lambda: verify_attestation(token, jwks), args.ops, args.repeat),
    }


def _request(port: int, path: str, api_key: str, body: dict[str, Any]) -> bytes:
    data = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\nAuthorization: Bearer {api_key}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n"
    )
    return head.encode() + data


def over_http(args: argparse.Namespace, scratch: Path) -> dict[str, list[LoadResult]]:
    url = f"sqlite:///{scratch / 'gateway.db'}"
    env = {name: value for name, value in os.environ.items() if not name.startswith("XINYONG_")}
    run_cli("--db", url, "migrate", env=env)
    key = run_cli(
        "--db", url, "keys", "add", "--name", "bench", "--scopes", "screen,attest", "--rate", "1000000", env=env
    )
    port = free_port()
    with pinned(args.server_cpu):
        gateway = start_server(
            "gateway",
            [str(BIN / "xinyong-gateway"), "--db", url, "serve", "--port", str(port), "--no-projector"],
            port,
            scratch / "gateway.log",
            {**env, "XINYONG_LOG_FORMAT": "json"},
        )
    try:
        gateway.wait_ready("/readyz")
        rng = random.Random(2)
        subjects = [{"id_type": "uscc", "id": ingest._make_uscc(rng)} for _ in range(args.requests)]
        kinds = {
            "screenings (baseline)": [
                _request(port, "/v1/screenings", key["api_key"], {"subjects": [s]}) for s in subjects
            ],
            "attestations": [_request(port, "/v1/attestations", key["api_key"], {"subject": s}) for s in subjects],
        }
        results: dict[str, list[LoadResult]] = {name: [] for name in kinds}
        for _ in range(args.repeat):
            for name, requests in kinds.items():
                with pinned(args.client_cpu):
                    result = run_closed_loop(
                        HOST, port, requests, concurrency=args.concurrency, expected_status=200, time_limit=120
                    )
                if result.errors or result.ok != result.completed:
                    raise BenchError(f"{name}: {result.errors[:3]} {result.statuses}\n{gateway.log_tail()}")
                results[name].append(result)
        return results
    finally:
        gateway.stop()


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    scratch = Path(tempfile.mkdtemp(prefix="xinyong-attest-"))
    try:
        print(f"in process, µs per operation (median of {args.repeat} rounds of {args.ops}):")
        micro = in_process(args, scratch)
        for name, micros in micro.items():
            print(f"  {name:<24} {micros:8.1f} µs")
        print(f"  sign / json.dumps: {micro['sign'] / micro['json.dumps (baseline)']:.1f}x")
        print(
            f"\nover HTTP, one subject a request, {args.requests} requests x {args.concurrency} connections,"
            f" median of {args.repeat} rounds:"
        )
        results = over_http(args, scratch)
        rates = {}
        for name, rounds in results.items():
            rate = statistics.median(r.rate for r in rounds)
            p50 = statistics.median(percentile(sorted(r.latencies_ns), 0.50) for r in rounds) / 1e6
            p99 = statistics.median(percentile(sorted(r.latencies_ns), 0.99) for r in rounds) / 1e6
            rates[name] = rate
            print(f"  {name:<24} {rate:8,.0f} req/s   p50 {p50:6.2f} ms   p99 {p99:6.2f} ms")
        print(f"  attestations / screenings: {rates['attestations'] / rates['screenings (baseline)']:.2f}")
        return 0
    except BenchError as exc:
        print(f"bench/attest.py: {exc}", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
