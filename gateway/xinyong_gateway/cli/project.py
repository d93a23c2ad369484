"""``xinyong-gateway project``: apply the inbox to credit files and list status (``serve`` runs it inside unless
``--no-projector``); ``--once`` catches up, lets time pass and exits."""

from __future__ import annotations

import argparse
import time
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
    project = add_command(
        commands,
        "project",
        "apply the inbox to credit files and lists (serve does it too)",
        "xinyong-gateway project --once",
        description="Apply the inbox to credit files and list status (`serve` runs a projector inside unless"
        " --no-projector).\nProgress goes to stderr with --once; Ctrl-C stops it (exit 130), and running it again"
        " resumes where it stopped.",
    )
    project.add_argument("--once", action="store_true", help="catch up with the inbox, let time pass, then exit")
    policy_option(project)
    project.set_defaults(handler=_project)


def _project(settings: GatewaySettings, args: argparse.Namespace, out: Output) -> int:
    from xinyong_gateway.credit.policy import policy_from
    from xinyong_gateway.credit.projector import Projector
    from xinyong_gateway.logs import configure_logging

    policy = policy_from(settings.policy_file)
    display = Progress("project", settings.progress_interval)
    started = time.monotonic()
    applied = 0

    def progress(done: int) -> None:
        nonlocal applied
        applied = done
        display.show(f"applied {plural(done, 'event')} ({done / max(time.monotonic() - started, 1e-9):,.0f}/s)")

    async def run() -> dict[str, Any]:
        async with open_resources(settings) as opened:
            store = opened.store
            if not args.once:
                configure_logging(settings.log_format, settings.log_level)  # the checks passed: a service from here
            # A long-running projector shares the partitions with the others; a one-off catch-up does them all.
            projector = Projector(store, opened.master, policy, claims=None if args.once else store.claim_partitions())
            if not args.once:
                await projector.run()
            caught_up = await projector.catch_up(progress=progress)
            return {
                "applied": caught_up,
                "position": await store.projector_position(),
                "policy_version": projector.policy.version,  # an adopted policy (`policy apply`) wins over the file
            }

    def interrupted() -> str:
        done = f" after applying {plural(applied, 'event')}" if args.once else ""
        return (
            f"Interrupted{done}; the projector commits each batch with its inbox position, so running it again"
            " resumes where it stopped."
        )

    try:
        result = run_until_interrupted(run(), interrupted)
    finally:
        display.close()
    out.emit(
        result,
        f"Applied {plural(result['applied'], 'event')}; the projector is at inbox position {result['position']}"
        f" (policy {result['policy_version']}).",
    )
    return 0
