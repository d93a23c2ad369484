"""A courier posts a day's delivery records, signed with its Ed25519 key, empty parcels included.

Register the courier once (its public key) and keep the signing key in a file:

    .venv/bin/xinyong keygen --json > courier-key.json
    .venv/bin/xinyong-gateway sources add --kind courier --name "连云港顺捷快递" --uscc 91320700134762510T \\
        --public-key "$(jq -r .public_key courier-key.json)"               # prints source_id
    export XINYONG_URL=http://127.0.0.1:8080 XINYONG_SOURCE_ID=src_… XINYONG_KEY_FILE=courier-key.json
    .venv/bin/python examples/courier_deliveries.py 91320703MA20B8C33E 91320706MA1Y2N6Q47

Each merchant named gets the day's parcels (by default yesterday's, China time: the nightly upload). Every record
is posted under the webhook id ``<waybill>-<status>``, so running the upload again answers "duplicate" for each
record and counts nothing twice. An empty parcel (空包: a parcel shipped to fake a sale) counts against the merchant
that shipped it: three within 90 days put it on the watch list under the shipped policy, ten on the black list.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path

from xinyong import EventSender, SigningKey, WebhookAck, XinyongError

CHINA = timezone(timedelta(hours=8))
COURIER = {"id_type": "uscc", "id": "91320700134762510T", "name": "连云港顺捷快递有限公司"}
DAY = ["delivered", "empty_parcel", "delivered", "empty_parcel", "returned", "empty_parcel", "delivered", "lost"]


def signing_key() -> SigningKey:
    """The courier's whsk_ key, from a file (a bare key, or the JSON of `xinyong keygen --json`)."""
    text = Path(os.environ["XINYONG_KEY_FILE"]).read_text().strip()
    return SigningKey.parse(json.loads(text)["signing_key"] if text.startswith("{") else text)


def day_of_records(merchant: str, day: date) -> list[tuple[str, dict[str, object]]]:
    """(webhook id, event) for each parcel the courier handled for ``merchant`` on ``day``."""
    records = []
    for n, status in enumerate(DAY):
        waybill = f"YT{day:%Y%m%d}{merchant[-6:]}{n:02d}"
        occurred_at = datetime.combine(day, time(9), CHINA) + timedelta(minutes=47 * n)
        data = {
            "waybill_no": waybill,
            "courier": COURIER,
            "merchant": {"id_type": "uscc", "id": merchant},
            "status": status,
            "occurred_at": occurred_at.isoformat(),
        }
        event = {"type": "delivery.recorded", "timestamp": occurred_at.isoformat(), "data": data}
        records.append((f"{waybill}-{status}", event))
    return records


async def upload(merchants: list[str], day: date) -> int:
    url = os.environ.get("XINYONG_URL", "http://127.0.0.1:8080")
    failed = 0
    async with EventSender(url, os.environ["XINYONG_SOURCE_ID"], signing_key()) as sender:
        for merchant in merchants:
            records = day_of_records(merchant, day)
            results = await sender.send_many(records)
            outcomes: dict[str, int] = {}
            for (webhook_id, _), result in zip(records, results, strict=True):
                if isinstance(result, WebhookAck):
                    outcomes[result.status] = outcomes.get(result.status, 0) + 1
                else:
                    failed += 1
                    print(f"  {webhook_id}: {result}")
            empties = DAY.count("empty_parcel")
            summary = ", ".join(f"{count} {outcome}" for outcome, count in sorted(outcomes.items()))
            print(f"{merchant}: {len(records)} delivery records of {day} ({empties} empty parcels): {summary}")
    return failed


def main() -> int:
    parser = argparse.ArgumentParser(description="Post a day's signed delivery records, empty parcels included.")
    parser.add_argument("merchants", nargs="+", metavar="USCC", help="the merchants whose parcels were handled")
    yesterday = datetime.now(CHINA).date() - timedelta(days=1)
    parser.add_argument("--date", type=date.fromisoformat, default=yesterday, help="the day (default: yesterday)")
    args = parser.parse_args()
    try:
        failed = asyncio.run(upload(args.merchants, args.date))
    except XinyongError as exc:  # unreachable gateway after the retries, unknown source, wrong key …
        print(f"the upload stopped: {exc} (running it again is safe: stored records answer duplicate)")
        return 1
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
