"""``xinyong-gateway status``: the gateway's state on one screen (JSON when piped, or with ``--json``).

Version, database, migrations, active sources by kind, the last event from each kind of source, projector lag, the
notifications' outbox (subscriptions active and disabled, messages pending and given up), credit files per list, and
the objection deadlines due within a week (overdue ones first). Read-only; it works whether or not ``serve`` is running.
"""

from __future__ import annotations

import argparse
import asyncio
from datetime import UTC, date, datetime
from typing import Any

from xinyong_gateway import __version__
from xinyong_gateway.cli._common import Output, add_command, iso, open_resources, plural
from xinyong_gateway.credit.in_force import PolicyInForce
from xinyong_gateway.credit.operations import operations_report
from xinyong_gateway.credit.policy import policy_from
from xinyong_gateway.settings import GatewaySettings

__all__ = ["add_parser"]

_KINDS = ("marketplace", "courier", "regulator")
_NONE_LATELY = "none"  # among the last LAST_EVENTS_WINDOW inbox rows


def add_parser(commands: Any) -> None:
    status = add_command(commands, "status", "the gateway's state on one screen", "xinyong-gateway status")
    status.set_defaults(handler=_status)


async def _read(settings: GatewaySettings, now: datetime) -> dict[str, Any]:
    async with open_resources(settings) as opened:
        store = opened.store
        schema = await store.schema_status()
        policy = await PolicyInForce(store, policy_from(settings.policy_file)).refresh()
        report = await operations_report(store, policy, now)
        last = await store.last_events()
        subscriptions = await store.list_subscriptions()
        outbox = [await store.outbox_state(s.subscription_id) for s in subscriptions]
    lag_events = max(lag.events for lag in report.projector_lag.values())
    lag_seconds = max(lag.seconds for lag in report.projector_lag.values())
    return {
        "version": __version__,
        "database": store.display_url,
        "migrations": {"applied": schema.current, "latest": schema.latest, "pending": list(schema.pending)},
        "policy_version": policy.version,
        "sources_active": {kind: report.state.active_sources.get(kind, 0) for kind in _KINDS},
        "last_event": {kind: iso(last.get(kind)) for kind in _KINDS},
        "projector": {
            "inbox_head": report.state.inbox_head,
            "lag_events": lag_events,
            "lag_seconds": round(lag_seconds, 3),
            "partitions_behind": sum(lag.events > 0 for lag in report.projector_lag.values()),
        },
        "dispatcher": {
            "subscriptions_active": sum(s.status == "active" for s in subscriptions),
            "subscriptions_disabled": sum(s.status == "disabled" for s in subscriptions),
            "pending": sum(state.pending for state in outbox),
            "failed": sum(state.failed for state in outbox),
        },
        "change_feed_head": report.state.change_feed_head,
        "lists": report.lists,
        "open_cases": report.open_cases,
        "overdue_objections": report.overdue_objections,
        "deadlines_this_week": [
            {
                "objection_id": case["objection_id"],
                "subject": case["subject"],
                "state": case["state"],
                "deadline": case["deadline"],
                "overdue": bool(case.get("overdue")) and case["state"] == "open",
            }
            for case in report.due
        ],
    }


def _dispatcher_line(outbox: dict[str, int]) -> str:
    if not outbox["subscriptions_active"] and not outbox["subscriptions_disabled"]:
        return "no subscriptions"
    disabled = f" ({outbox['subscriptions_disabled']} disabled)" if outbox["subscriptions_disabled"] else ""
    failed = f", {plural(outbox['failed'], 'message')} given up" if outbox["failed"] else ""
    return (
        f"{plural(outbox['subscriptions_active'], 'active subscription')}{disabled},"
        f" {plural(outbox['pending'], 'message')} pending{failed}"
    )


def _lines(status: dict[str, Any], today: date) -> list[str]:
    migrations = status["migrations"]
    pending = f", {len(migrations['pending'])} pending: run `xinyong-gateway migrate`" if migrations["pending"] else ""
    projector = status["projector"]
    lag = (
        "caught up"
        if projector["lag_events"] == 0
        else f"{projector['lag_events']} events, {projector['lag_seconds']:.1f} s behind"
        f" ({projector['partitions_behind']} of 16 partitions)"
    )
    lines = [
        f"xinyong-gateway {status['version']}",
        f"  database    {status['database']} (migration {migrations['applied']} of {migrations['latest']}{pending})",
        f"  policy      {status['policy_version']}",
        "  sources     " + ", ".join(f"{count} {kind}" for kind, count in status["sources_active"].items()),
        "  last event  " + ", ".join(f"{kind} {at or _NONE_LATELY}" for kind, at in status["last_event"].items()),
        f"  projector   {lag} (inbox head {projector['inbox_head']}, change feed head {status['change_feed_head']})",
        "  dispatcher  " + _dispatcher_line(status["dispatcher"]),
        "  lists       " + ", ".join(f"{name} {count}" for name, count in status["lists"].items()),
        f"  due process {plural(status['open_cases']['objection'], 'open objection')},"
        f" {status['overdue_objections']} overdue, {plural(status['open_cases']['repair'], 'pending repair')}",
    ]
    deadlines = status["deadlines_this_week"]
    lines.append(f"  deadlines this week ({len(deadlines)}):")
    for case in deadlines:
        days = (date.fromisoformat(case["deadline"]) - today).days
        when = "OVERDUE" if case["overdue"] else "today" if days == 0 else f"in {plural(days, 'day')}"
        what = "reply" if case["state"] == "open" else "correction" if case["state"] == "upheld" else "feedback"
        lines.append(f"    {case['deadline']} {when:<10} {what:<10} {case['objection_id']}  {case['subject']}")
    return lines


def _status(settings: GatewaySettings, args: argparse.Namespace, out: Output) -> int:
    now = datetime.now(UTC)
    status = asyncio.run(_read(settings, now))
    out.emit(status, "\n".join(_lines(status, now.date())))
    return 0
