"""A marketplace checks a merchant against the city's credit lists before onboarding its shop.

Run a local gateway and issue the marketplace an API key (both shown once), then check a merchant:

    .venv/bin/xinyong-gateway migrate
    .venv/bin/xinyong-gateway keys add --name "云购商城" --scopes screen       # prints api_key (xyk_…)
    .venv/bin/xinyong-gateway serve --port 8080 &
    export XINYONG_API_KEY=xyk_…
    .venv/bin/python examples/onboarding_check.py uscc 91320706MA1Y2N6Q47 "连云港示例网店有限公司"
    .venv/bin/python examples/onboarding_check.py ric 320706198605174597 王五 --gateway http://127.0.0.1:8080

It prints the decision with the measures and reasons behind it, and exits 0 to onboard (allow), 3 to send the
application to a person (review), 4 to refuse it (deny), and 1 when the check could not be made: a marketplace never
onboards on a failed check, the SDK never answers "allow" by default.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

from xinyong import Client, InvalidIdentifierError, OnboardingDecision, XinyongError

EXIT = {"allow": 0, "review": 3, "deny": 4}


def explain(decision: OnboardingDecision) -> str:
    status = decision.status
    subject = status.subject
    as_of = f"{status.as_of:%Y-%m-%d %H:%M:%S %Z}"
    lines = [
        f"{decision.decision.upper()}: {subject.id_type} {subject.id} {subject.name or ''}".rstrip(),
        f"  list {status.list}, grade {status.grade or '-'} (policy {status.policy_version}, as of {as_of})",
    ]
    if decision.measures:
        lines.append(f"  measures: {', '.join(decision.measures)}")
    for reason in decision.reasons:
        lines.append(
            f"  reason {reason.code} ({reason.list}, {reason.severity}) effective {reason.effective_from:%Y-%m-%d}"
            f" to {reason.effective_until:%Y-%m-%d}, events {reason.source_events}"
        )
    return "\n".join(lines)


async def check(gateway: str, api_key: str, merchant: dict[str, str]) -> OnboardingDecision:
    async with Client(gateway, api_key, max_attempts=3) as client:
        return await client.check_onboarding(merchant)


def main() -> int:
    parser = argparse.ArgumentParser(description="Check a merchant before onboarding it.")
    parser.add_argument("id_type", choices=["uscc", "ric"])
    parser.add_argument("id")
    parser.add_argument("name", nargs="?")
    parser.add_argument("--gateway", default=os.environ.get("XINYONG_GATEWAY_URL", "http://127.0.0.1:8080"))
    args = parser.parse_args()
    api_key = os.environ.get("XINYONG_API_KEY")
    if not api_key:
        parser.error("set XINYONG_API_KEY to the xyk_… key from `xinyong-gateway keys add`")
    merchant = {"id_type": args.id_type, "id": args.id} | ({"name": args.name} if args.name else {})
    try:
        decision = asyncio.run(check(args.gateway, api_key, merchant))
    except InvalidIdentifierError as exc:
        print(f"not a valid identifier: {exc}", file=sys.stderr)
        return 2
    except XinyongError as exc:  # unreachable gateway, revoked key, …: no decision, so no onboarding
        print(f"the credit check could not be made, do not onboard yet: {exc}", file=sys.stderr)
        return 1
    print(explain(decision))
    return EXIT[decision.decision]


if __name__ == "__main__":
    raise SystemExit(main())
