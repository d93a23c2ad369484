"""``xinyong-gateway retention run [--dry-run]``: erase the natural persons named by raw bodies whose time is up under
the policy's ``[retention]``, then forget the persons every one of whose bodies is erased (``credit/retention.py``;
``serve`` runs it every ``XINYONG_RETENTION_INTERVAL`` seconds too). No list changes."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from typing import Any

from xinyong_gateway.cli._common import (
    Output,
    Progress,
    add_command,
    open_resources,
    plural,
    policy_option,
    run_until_interrupted,
)
from xinyong_gateway.settings import GatewaySettings

__all__ = ["add_parser"]


def add_parser(commands: Any) -> None:
    group = add_command(
        commands,
        "retention",
        "erase persons from raw bodies whose time is up ([retention])",
        "xinyong-gateway retention run --dry-run",
    )
    actions = group.add_subparsers(dest="retention_command", metavar="ACTION", required=True)
    run = add_command(
        actions,
        "run",
        "erase what is due now (--dry-run: count it only)",
        "xinyong-gateway retention run --dry-run",
        description="Replace each raw body whose time is up under the policy's [retention] with its erased form (the"
        " same facts, the persons it names replaced by stand-ins), then forget the sealed identity of every person"
        " all of whose bodies are erased. Digests, types, sources and times stay; no list changes. Interrupted, run"
        " it again: each page of bodies commits on its own.",
    )
    run.add_argument("--dry-run", action="store_true", help="count what is due, erase nothing")
    policy_option(run, "the configured credit policy (the adopted one wins, as for the projector)")
    run.set_defaults(handler=_run)


def _run(settings: GatewaySettings, args: argparse.Namespace, out: Output) -> int:
    from xinyong_gateway.credit.policy import policy_from
    from xinyong_gateway.credit.retention import RetentionResult, run_retention

    policy = policy_from(settings.policy_file)
    display = Progress("retention run", settings.progress_interval)

    async def run() -> RetentionResult:
        async with open_resources(settings) as opened:
            result = await run_retention(
                opened.store, opened.master, policy, datetime.now(UTC), dry_run=args.dry_run, progress=display.show
            )
            if not args.dry_run:
                await opened.audit("retention.run", opened.store.display_url, result.audit_details)
            return result

    try:
        result = run_until_interrupted(
            run(), lambda: "Interrupted; the bodies erased so far stay erased, and running it again does the rest."
        )
    finally:
        display.close()
    document = {
        "dry_run": result.dry_run,
        "events": result.events,
        "already_erased": result.already_erased,
        "due": result.due,
        "erased": result.erased,
        "subjects_due": result.subjects_due,
        "subjects_forgotten": result.subjects_forgotten,
        "keep_days": result.keep_days,
    }
    if result.dry_run:
        human = (
            f"Dry run: {plural(result.due, 'body', 'bodies')} of {plural(result.events, 'event')} are due for erasure"
            f" (kept {result.keep_days} days after their last record ended); {plural(result.subjects_due, 'person')}"
            " would then be forgotten."
        )
    else:
        human = (
            f"Erased the persons in {plural(result.erased, 'body', 'bodies')} (of {plural(result.events, 'event')});"
            f" forgot {plural(result.subjects_forgotten, 'person')}. Lists are unchanged."
        )
    out.emit(document, human)
    return 0
