"""``xinyong-gateway dispatch``: deliver the outbox to subscribers (``serve`` runs a dispatcher inside unless
``--no-dispatcher``); on PostgreSQL any number share the work."""

from __future__ import annotations

import argparse
from typing import Any

from xinyong_gateway.cli._common import Output, add_command, open_resources, run_until_interrupted
from xinyong_gateway.settings import GatewaySettings

__all__ = ["add_parser"]


def add_parser(commands: Any) -> None:
    dispatch = add_command(
        commands,
        "dispatch",
        "deliver notifications to subscribers (serve does it too)",
        "xinyong-gateway dispatch",
        description="Deliver the outbox to subscribers as signed webhooks, with retries (`serve` runs a dispatcher"
        " inside unless --no-dispatcher). Ctrl-C stops it; messages it was sending are sent again by the next run.",
    )
    dispatch.set_defaults(handler=_dispatch)


def _dispatch(settings: GatewaySettings, args: argparse.Namespace, out: Output) -> int:
    from xinyong_gateway.logs import configure_logging
    from xinyong_gateway.notify import dispatcher_for

    async def run() -> None:
        async with open_resources(settings) as opened:
            configure_logging(settings.log_format, settings.log_level)  # the checks passed: a service from here
            dispatcher = dispatcher_for(opened.store, opened.master, settings)
            await dispatcher.run()

    run_until_interrupted(
        run(), lambda: "Interrupted; messages being sent were leased and are sent again by the next dispatcher."
    )
    return 0
