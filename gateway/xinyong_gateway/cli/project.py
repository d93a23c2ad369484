"""``xinyong-gateway project``: apply the inbox to credit files and list status (``serve`` runs it inside unless
``--no-projector``); ``--once`` catches up, lets time pass and exits."""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from xinyong_gateway.cli._common import Output, add_command, open_resources, policy_option
from xinyong_gateway.settings import GatewaySettings

__all__ = ["add_parser"]


def add_parser(commands: Any) -> None:
    project = add_command(
        commands,
        "project",
        "apply the inbox to credit files and list status (runs inside `serve` unless --no-projector)",
        "xinyong-gateway project --once",
    )
    project.add_argument("--once", action="store_true", help="catch up with the inbox, let time pass, then exit")
    policy_option(project)
    project.set_defaults(handler=_project)


def _project(settings: GatewaySettings, args: argparse.Namespace, out: Output) -> int:
    from xinyong_gateway.credit.policy import policy_from
    from xinyong_gateway.credit.projector import Projector
    from xinyong_gateway.logs import configure_logging

    policy = policy_from(settings.policy_file)
    if not args.once:
        configure_logging(settings.log_format, settings.log_level)

    async def run() -> dict[str, Any]:
        async with open_resources(settings) as opened:
            store = opened.store
            # A long-running projector shares the partitions with the others; a one-off catch-up does them all.
            projector = Projector(store, opened.master, policy, claims=None if args.once else store.claim_partitions())
            if not args.once:
                await projector.run()
            applied = await projector.catch_up()
            return {
                "applied": applied,
                "position": await store.projector_position(),
                "policy_version": projector.policy.version,  # an adopted policy (`policy apply`) wins over the file
            }

    result = asyncio.run(run())
    out.emit(
        result,
        f"Applied {result['applied']} event(s); the projector is at inbox position {result['position']}"
        f" (policy {result['policy_version']}).",
    )
    return 0
