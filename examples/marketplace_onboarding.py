"""A marketplace screens a merchant against the city's credit lists before opening its store.

The gateway's URL and the marketplace's API key (scope ``screen``) come from the environment:

    .venv/bin/xinyong-gateway keys add --name "云购商城" --scopes screen,changes   # prints api_key and lookup_secret
    export XINYONG_URL=http://127.0.0.1:8080 XINYONG_API_KEY=xyk_…
    .venv/bin/python examples/marketplace_onboarding.py uscc 91320706MA1Y2N6Q47 "连云港示例网店有限公司"
    .venv/bin/python examples/marketplace_onboarding.py ric 320706198605174597 王五

With a list mirror (``xinyong mirror sync lists.db``) named in ``XINYONG_MIRROR`` and the key's lookup secret in
``XINYONG_LOOKUP_SECRET``, the check still answers when the gateway cannot be reached, from the mirror.

It prints the decision with the measures and reasons behind it, and exits 0 to open the store (allow), 3 to send
the application to a person (review), 4 to refuse it (deny), and 1 when no check could be made: a marketplace never
opens a store on a failed check, and the SDK never answers "allow" by default.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

from xinyong import Client, InvalidIdentifierError, ListMirror, OnboardingDecision, TransportError, XinyongError

EXIT = {"allow": 0, "review": 3, "deny": 4}
ACTION = {"allow": "open the store", "review": "send the application to a person", "deny": "refuse the store"}


def explain(decision: OnboardingDecision, where: str) -> str:
    status, subject = decision.status, decision.status.subject
    lines = [
        f"{decision.decision.upper()}: {subject.id_type} {subject.id} {subject.name or ''}".rstrip(),
        f"  → {ACTION[decision.decision]}",
        f"  list {status.list}, grade {status.grade or '-'} (policy {status.policy_version},"
        f" {where} as of {status.as_of:%Y-%m-%d %H:%M:%S %Z})",
    ]
    if decision.measures:
        lines.append(f"  measures: {', '.join(decision.measures)}")
    for reason in decision.reasons:
        lines.append(
            f"  reason {reason.code} ({reason.list}, {reason.severity}) effective {reason.effective_from:%Y-%m-%d}"
            f" to {reason.effective_until:%Y-%m-%d}, events {reason.source_events}, record {reason.record_id}"
        )
    lines.extend(f"  note: {note}" for note in decision.notes)
    return "\n".join(lines)


async def check(merchant: dict[str, str]) -> tuple[OnboardingDecision, str]:
    url = os.environ.get("XINYONG_URL", "http://127.0.0.1:8080")
    async with Client(url, os.environ["XINYONG_API_KEY"], max_attempts=3) as client:  # the applicant is waiting
        try:
            return await client.check_onboarding(merchant), "gateway"
        except TransportError:
            if "XINYONG_MIRROR" not in os.environ:
                raise
    # The gateway cannot be reached: the list mirror answers (review instead of allow once it is stale).
    with ListMirror(os.environ["XINYONG_MIRROR"], None, os.environ["XINYONG_LOOKUP_SECRET"]) as mirror:
        return mirror.check_onboarding(merchant), "list mirror"


def main() -> int:
    parser = argparse.ArgumentParser(description="Screen a merchant before opening its store.")
    parser.add_argument("id_type", choices=["uscc", "ric"])
    parser.add_argument("id")
    parser.add_argument("name", nargs="?")
    args = parser.parse_args()
    if not os.environ.get("XINYONG_API_KEY"):
        parser.error("set XINYONG_API_KEY to the xyk_… key from `xinyong-gateway keys add`")
    merchant = {"id_type": args.id_type, "id": args.id} | ({"name": args.name} if args.name else {})
    try:
        decision, where = asyncio.run(check(merchant))
    except InvalidIdentifierError as exc:
        print(f"not a valid identifier: {exc}", file=sys.stderr)
        return 2
    except XinyongError as exc:  # unreachable gateway and no mirror, revoked key, …: no decision, no store
        print(f"the credit check could not be made, do not open the store yet: {exc}", file=sys.stderr)
        return 1
    print(explain(decision, where))
    return EXIT[decision.decision]


if __name__ == "__main__":
    raise SystemExit(main())
