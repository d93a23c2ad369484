"""``xinyong-gateway subjects show uscc|ric ID [--reveal]``: a regulator's view of one credit file
(``credit.report``). A reveal is recorded in the audit log (who asked, the subject masked) before anything is shown."""

from __future__ import annotations

import argparse
import asyncio
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from xinyong.subjects import Subject, mask_id
from xinyong_gateway import audit
from xinyong_gateway.cli._common import CliError, Output, add_command, open_resources
from xinyong_gateway.credit.in_force import PolicyInForce
from xinyong_gateway.credit.policy import policy_from
from xinyong_gateway.credit.report import report_lines, subject_report
from xinyong_gateway.errors import GatewayError, StoreError
from xinyong_gateway.settings import GatewaySettings

__all__ = ["add_parser"]


def add_parser(commands: Any) -> None:
    subjects = add_command(
        commands, "subjects", "inspect credit files", "xinyong-gateway subjects show uscc 91330100MA2H9X4W2M"
    )
    actions = subjects.add_subparsers(dest="subjects_command", metavar="ACTION", required=True)
    show = add_command(
        actions,
        "show",
        "a regulator's view of one credit file (masked unless --reveal)",
        "xinyong-gateway subjects show ric 320102199001011234 --reveal",
        description="A regulator's view of one credit file: status, records, status history (masked unless --reveal).",
    )
    show.add_argument("id_type", choices=["uscc", "ric"])
    show.add_argument("id", metavar="ID")
    show.add_argument(
        "--reveal",
        action="store_true",
        help="show the identifier and name unmasked (recorded in the audit log: who asked, the subject masked)",
    )
    show.set_defaults(handler=_show)


def _show(settings: GatewaySettings, args: argparse.Namespace, out: Output) -> int:
    try:
        subject = Subject.model_validate({"id_type": args.id_type, "id": args.id})
    except ValidationError:
        raise CliError(f"That is not a valid {args.id_type.upper()}.") from None

    async def run() -> dict[str, Any] | None:
        async with open_resources(settings) as opened:
            policy = await PolicyInForce(opened.store, policy_from(settings.policy_file)).refresh()
            report = await subject_report(
                opened.store, opened.master, subject, reveal=args.reveal, now=datetime.now(UTC), policy=policy
            )
            if report is not None and args.reveal:
                # Recorded before anything is shown: a reveal the log cannot record shows nothing. The entry names the
                # subject as it may be shown, and by its credit file's blind-index key; never the revealed values.
                try:
                    await audit.record(
                        opened.store,
                        opened.master,
                        opened.actor,
                        "subjects.reveal",
                        f"{subject.id_type} {mask_id(subject.id_type, subject.id)}",
                        {"subject_key": opened.master.subject_key(subject.id_type, subject.id)},
                    )
                except StoreError as exc:
                    raise GatewayError(
                        f"Nothing was revealed: the audit log could not record the request: {exc}"
                    ) from exc
            return report

    report = asyncio.run(run())
    if report is None:
        raise CliError("No credit file for this subject (nothing has been reported about it).")
    out.emit(report, "\n".join(report_lines(report)))
    return 0
