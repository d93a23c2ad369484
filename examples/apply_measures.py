"""A marketplace follows the city's list change feed and applies the measures to its own shop records.

The shop records are the marketplace's (here a JSON file); the feed says, subject by subject, which measures
apply now. A black-listed merchant's store is closed (``close_store``), a merchant on the watch list is demoted
in search (``search_demotion``), a red-listed one boosted (``search_boost``); when measures are lifted the ranking
follows, while a closed store stays closed until a person reopens it. A person (sole trader) appears in the feed
only by a pseudonym, which the marketplace computes from the resident id it holds with the key's lookup secret.
The feed cursor is saved with the records, so each run goes on where the last one stopped.

    export XINYONG_URL=http://127.0.0.1:8080 XINYONG_API_KEY=xyk_… XINYONG_LOOKUP_SECRET=xyls_…   # scope: changes
    .venv/bin/python examples/apply_measures.py shops.json            # apply what changed since the last run
    .venv/bin/python examples/apply_measures.py shops.json --follow   # and keep following until Ctrl-C

shops.json: {"cursor": null, "shops": [{"shop_id": "shop-1003", "merchant": {"id_type": "uscc", "id": "9132…"},
"open": true, "search": "normal"}, …]}
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
from pathlib import Path
from typing import Any

from xinyong import Client, ListChange, ric_pseudonym


def feed_name(merchant: dict[str, str]) -> tuple[str, str]:
    """How the change feed names this merchant: a business by its code, a person by the key's pseudonym."""
    if merchant["id_type"] == "uscc":
        return ("uscc", merchant["id"])
    return ("ric", ric_pseudonym(merchant["id"], os.environ["XINYONG_LOOKUP_SECRET"]))


def apply(shop: dict[str, Any], change: ListChange) -> list[str]:
    """Bring one shop record in line with the measures now in force; what was done, in words."""
    done = []
    search = "boosted" if "search_boost" in change.measures else "normal"
    if "search_demotion" in change.measures:
        search = "demoted"
    if shop["search"] != search:
        done.append(f"search {shop['search']} → {search}")
        shop["search"] = search
    if "close_store" in change.measures and shop["open"]:
        shop["open"] = False
        done.append("store closed")
    elif not shop["open"] and "close_store" not in change.measures:
        done.append("store closure lifted (a person decides on reopening)")
    return done


def save(records_path: Path, records: dict[str, Any]) -> None:
    """Write the records and the cursor together: a new file, then renamed over the old one."""
    temporary = records_path.with_name(records_path.name + ".new")
    temporary.write_text(json.dumps(records, ensure_ascii=False, indent=2), encoding="utf-8")
    temporary.replace(records_path)


async def follow(records_path: Path, records: dict[str, Any], keep_following: bool) -> int:
    by_subject: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for shop in records["shops"]:
        by_subject.setdefault(feed_name(shop["merchant"]), []).append(shop)
    applied = 0
    async with Client(os.environ.get("XINYONG_URL", "http://127.0.0.1:8080"), os.environ["XINYONG_API_KEY"]) as client:
        async for change in client.changes(after=records["cursor"], follow=keep_following):
            subject = change.subject
            name = (subject.id_type, subject.id if subject.id_type == "uscc" else subject.pseudonym)
            for shop in by_subject.get(name, []):
                done = apply(shop, change)
                if done:
                    applied += 1
                    why = ", ".join(dict.fromkeys(reason.code for reason in change.reasons)) or "no negative record"
                    print(f"{shop['shop_id']}: {'; '.join(done)} ({change.list} list: {why})")
            records["cursor"] = change.cursor  # saved with the records it produced, so nothing is applied twice
            save(records_path, records)
    print(f"{applied} shop records changed; feed cursor {records['cursor']}")
    return applied


def main() -> int:
    parser = argparse.ArgumentParser(description="Apply the credit lists' measures to the marketplace's shops.")
    parser.add_argument("shops", type=Path, help="the marketplace's shop records (JSON)")
    parser.add_argument("--follow", action="store_true", help="keep following the feed until Ctrl-C")
    args = parser.parse_args()
    try:
        asyncio.run(follow(args.shops, json.loads(args.shops.read_text(encoding="utf-8")), args.follow))
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
