"""``xinyong-gateway objections file|list|show|decide`` and ``repairs apply|list|show|decide``: the regulator's and
operator's side of due process.

Filing and ruling write the same signed-event types a regulator would post (``objection.filed``,
``objection.decided``, ``repair.applied``, ``repair.decided``), into the inbox under the gateway's own operator source
(``migrate`` creates it), so nothing bypasses the log: a replay reproduces every outcome. The projector applies them
at its next step (inside ``serve``, or ``project --once``). Listing and showing read the subjects' credit files,
found through the index of case ids the projector keeps, and compute states and deadlines under the policy in force.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import ValidationError

from xinyong.events import EVENT_TYPES, error_pointers
from xinyong.subjects import Subject
from xinyong_gateway.access import OPERATOR_SOURCE_ID
from xinyong_gateway.cli._common import CliError, Output, Resources, add_command, open_resources, plural
from xinyong_gateway.credit.in_force import PolicyInForce
from xinyong_gateway.credit.operations import stored_cases
from xinyong_gateway.credit.policy import Policy, policy_from
from xinyong_gateway.credit.report import case_line
from xinyong_gateway.settings import GatewaySettings
from xinyong_gateway.store import AppendStatus, InboxEntry, partition_mask, to_micros

__all__ = ["add_parser"]

Kind = Literal["objection", "repair"]
_OPERATOR_SIGNATURE = "operator"
"""What the inbox records as the signature of an event the operator's command line wrote (no HTTP request)."""


def add_parser(commands: Any) -> None:
    _objections(commands)
    _repairs(commands)


def _subject_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("id_type", choices=["uscc", "ric"], help="the subject's kind of identifier")
    parser.add_argument("id", metavar="ID", help="the subject's USCC or resident identity number")


def _list_arguments(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument("--open", action="store_true", help=f"only {what} not yet ruled on")
    parser.add_argument("--overdue", action="store_true", help=f"only {what} whose reply is late")
    parser.add_argument("--subject", metavar="TYPE:ID", help="only this subject's (uscc:… or ric:…)")


def _objections(commands: Any) -> None:
    group = add_command(
        commands,
        "objections",
        "file, list, show and rule on objections to credit records",
        "xinyong-gateway objections list --open",
    )
    actions = group.add_subparsers(dest="objections_command", metavar="ACTION", required=True)
    file = add_command(
        actions,
        "file",
        "object to a record for a subject (disputed until ruled on)",
        "xinyong-gateway objections file uscc 91330100MA2H9X4W2M --record rec_… --grounds '…'",
    )
    _subject_arguments(file)
    file.add_argument("--record", required=True, metavar="RECORD_ID", help="the record objected to (rec_…)")
    file.add_argument("--grounds", required=True, help="why the record or the information behind it is wrong")
    file.add_argument("--objection-id", metavar="ID", help="the objection's id (default: a new obj-… id)")
    file.set_defaults(handler=lambda s, a, o: _open_case(s, a, o, "objection"))
    listing = add_command(
        actions, "list", "objections with their states and deadlines", "xinyong-gateway objections list --overdue"
    )
    _list_arguments(listing, "objections")
    listing.set_defaults(handler=lambda s, a, o: _list(s, a, o, "objection"))
    show = add_command(actions, "show", "one objection in full", "xinyong-gateway objections show obj-1a2b3c")
    show.add_argument("case_id", metavar="OBJECTION_ID")
    show.set_defaults(handler=lambda s, a, o: _show(s, a, o, "objection"))
    decide = add_command(
        actions,
        "decide",
        "rule: upheld corrects the record, rejected keeps it",
        "xinyong-gateway objections decide obj-1a2b3c --outcome upheld --note '经核查属实'",
    )
    decide.add_argument("case_id", metavar="OBJECTION_ID")
    decide.add_argument("--outcome", required=True, choices=["upheld", "rejected"])
    decide.add_argument("--note", required=True, help="the ruling's reasons, as they are fed back")
    decide.add_argument("--subject", metavar="TYPE:ID", help="the subject, when the id is used for several")
    decide.set_defaults(handler=lambda s, a, o: _decide(s, a, o, "objection"))


def _repairs(commands: Any) -> None:
    group = add_command(
        commands,
        "repairs",
        "apply for, list, show and rule on credit repair of records",
        "xinyong-gateway repairs list --open",
    )
    actions = group.add_subparsers(dest="repairs_command", metavar="ACTION", required=True)
    apply = add_command(
        actions,
        "apply",
        "apply for repair of a record (refused at once if too early)",
        "xinyong-gateway repairs apply uscc 91330100MA2H9X4W2M --record rec_… --grounds '…'",
    )
    _subject_arguments(apply)
    apply.add_argument("--record", required=True, metavar="RECORD_ID", help="the record to repair (rec_…)")
    apply.add_argument("--grounds", required=True, help="how the subject corrected its behaviour")
    apply.add_argument("--repair-id", metavar="ID", help="the application's id (default: a new rep-… id)")
    apply.set_defaults(handler=lambda s, a, o: _open_case(s, a, o, "repair"))
    listing = add_command(actions, "list", "repair applications with their states", "xinyong-gateway repairs list")
    _list_arguments(listing, "applications")
    listing.set_defaults(handler=lambda s, a, o: _list(s, a, o, "repair"))
    show = add_command(actions, "show", "one repair application in full", "xinyong-gateway repairs show rep-1a2b3c")
    show.add_argument("case_id", metavar="REPAIR_ID")
    show.set_defaults(handler=lambda s, a, o: _show(s, a, o, "repair"))
    decide = add_command(
        actions,
        "decide",
        "rule: granted ends the record (repaired), refused keeps it",
        "xinyong-gateway repairs decide rep-1a2b3c --outcome granted --note '准予修复'",
    )
    decide.add_argument("case_id", metavar="REPAIR_ID")
    decide.add_argument("--outcome", required=True, choices=["granted", "refused"])
    decide.add_argument("--note", required=True, help="the ruling's reasons")
    decide.add_argument("--subject", metavar="TYPE:ID", help="the subject, when the id is used for several")
    decide.set_defaults(handler=lambda s, a, o: _decide(s, a, o, "repair"))


# -- writing events ---------------------------------------------------------------------------------------------
def _subject(id_type: str, value: str) -> Subject:
    try:
        return Subject.model_validate({"id_type": id_type, "id": value})
    except ValidationError:
        raise CliError(f"That is not a valid {id_type.upper()}.") from None


def _subject_option(text: str) -> Subject:
    id_type, _, value = text.partition(":")
    if id_type not in ("uscc", "ric") or not value:
        raise CliError("--subject takes uscc:CODE or ric:NUMBER.")
    return _subject(id_type, value)


_ACTIONS = {
    "objection.filed": "objections.file",
    "objection.decided": "objections.decide",
    "repair.applied": "repairs.apply",
    "repair.decided": "repairs.decide",
}


async def _write(opened: Resources, event_type: str, data: dict[str, Any]) -> str:
    """Validate ``data`` as an event of ``event_type``, append it under the operator source and record the action in
    the audit log (the subject masked); its webhook id."""
    if await opened.store.get_source(OPERATOR_SOURCE_ID) is None:
        raise CliError("This database has no operator source yet: run `xinyong-gateway migrate`.")
    now = datetime.now(UTC)
    body = {"type": event_type, "timestamp": now.isoformat(), "data": data}
    raw = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
    try:
        event = EVENT_TYPES[event_type].model_validate_json(raw, context={"now": now})
    except ValidationError as exc:
        problems = "; ".join(f"{e['pointer']}: {e['detail']}" for e in error_pointers(exc))
        raise CliError(f"That {event_type} is not valid: {problems}.") from None
    master = opened.master
    webhook_id = f"op-{secrets.token_hex(12)}"
    subjects = [value for value in event.data.__dict__.values() if isinstance(value, Subject)]
    entry = InboxEntry(
        source_id=OPERATOR_SOURCE_ID,
        webhook_id=webhook_id,
        body_digest=master.body_digest(raw),
        event_type=event_type,
        webhook_timestamp=int(now.timestamp()),
        signature=_OPERATOR_SIGNATURE,
        received_at=to_micros(now),
        sealed_body=master.seal_body(OPERATOR_SOURCE_ID, webhook_id, raw),
        partitions=partition_mask(master.subject_key(s.id_type, s.id) for s in subjects),
    )
    result = await opened.store.append(entry)
    if result.status is not AppendStatus.ACCEPTED:
        raise CliError(f"The event was not stored ({result.status.value}); run the command again.")
    case_id = data.get("objection_id") or data.get("repair_id")
    details = {key: data[key] for key in ("record_id", "outcome") if key in data} | {"webhook_id": webhook_id}
    shown = ", ".join(f"{s.id_type} {s.masked_id}" for s in subjects)
    await opened.audit(_ACTIONS[event_type], f"{case_id} ({shown})", details)
    return webhook_id


def _open_case(settings: GatewaySettings, args: argparse.Namespace, out: Output, kind: Kind) -> int:
    """``objections file`` and ``repairs apply``: a filing (or application) about a record, under a new or given id."""
    subject = _subject(args.id_type, args.id)
    event_type, prefix, verb = _OPENING[kind]
    case_id = getattr(args, f"{kind}_id") or f"{prefix}-{secrets.token_hex(6)}"
    data = {
        f"{kind}_id": case_id,
        "subject": {"id_type": subject.id_type, "id": subject.id},
        "record_id": args.record,
        "grounds": args.grounds,
        f"{verb}_at": datetime.now(UTC).isoformat(),
    }

    async def run() -> str:
        async with open_resources(settings) as opened:
            return await _write(opened, event_type, data)

    webhook_id = asyncio.run(run())
    out.emit(
        {f"{kind}_id": case_id, "webhook_id": webhook_id, "subject": subject.masked_id},
        f"{kind.capitalize()} {case_id} {verb} about {args.record} of {subject.masked_id}; the projector applies it"
        " at its next step (serve runs it; or project --once).",
    )
    return 0


_OPENING: dict[Kind, tuple[str, str, str]] = {
    "objection": ("objection.filed", "obj", "filed"),
    "repair": ("repair.applied", "rep", "applied"),
}
"""What opens a case of each kind: its event type, the prefix of a new id, and the verb of its ``*_at`` field."""


# -- reading cases ----------------------------------------------------------------------------------------------
async def _policy(opened: Resources, settings: GatewaySettings) -> Policy:
    return await PolicyInForce(opened.store, policy_from(settings.policy_file)).refresh()


async def _cases(
    opened: Resources, kind: Kind, policy: Policy, case_id: str | None = None, subject: Subject | None = None
) -> list[dict[str, Any]]:
    """The cases of ``kind`` (one id, or all) as the subjects' files hold them now, with states and deadlines."""
    key = opened.master.subject_key(subject.id_type, subject.id) if subject is not None else None
    return await stored_cases(opened.store, kind, policy, datetime.now(UTC), case_id, key)


def _line(case: dict[str, Any]) -> str:
    return f"{case['subject']}  {case_line(case)}"


def _list(settings: GatewaySettings, args: argparse.Namespace, out: Output, kind: Kind) -> int:
    subject = _subject_option(args.subject) if args.subject else None

    async def run() -> list[dict[str, Any]]:
        async with open_resources(settings) as opened:
            return await _cases(opened, kind, await _policy(opened, settings), subject=subject)

    cases = asyncio.run(run())
    if args.open:
        cases = [c for c in cases if c["state"] in ("open", "pending")]
    if args.overdue:
        cases = [c for c in cases if c.get("overdue")]
    for case in cases:
        del case["subject_key"]
    out.emit(cases, "\n".join([plural(len(cases), kind), *(f"  {_line(case)}" for case in cases)]))
    return 0


def _show(settings: GatewaySettings, args: argparse.Namespace, out: Output, kind: Kind) -> int:
    async def run() -> list[dict[str, Any]]:
        async with open_resources(settings) as opened:
            return await _cases(opened, kind, await _policy(opened, settings), args.case_id)

    cases = asyncio.run(run())
    if not cases:
        raise CliError(f"No {kind} {args.case_id} is known (has the projector applied it yet?).")
    for case in cases:
        del case["subject_key"]
    out.emit(cases if len(cases) > 1 else cases[0], "\n".join(_line(case) for case in cases))
    return 0


def _decide(settings: GatewaySettings, args: argparse.Namespace, out: Output, kind: Kind) -> int:
    chosen = _subject_option(args.subject) if args.subject else None

    async def run() -> tuple[str, str]:
        async with open_resources(settings) as opened:
            refs = await opened.store.case_refs(kind, args.case_id)
            if chosen is not None:
                key = opened.master.subject_key(chosen.id_type, chosen.id)
                refs = [ref for ref in refs if ref.subject_key == key]
            if not refs:
                raise CliError(
                    f"No {kind} {args.case_id} is known: has the projector applied its filing yet (serve runs it;"
                    " or project --once)?"
                )
            if len(refs) > 1:
                raise CliError(f"{len(refs)} subjects have a {kind} {args.case_id}: name one with --subject.")
            row = (await opened.store.load_subjects([refs[0].subject_key]))[refs[0].subject_key]
            cases = await _cases(opened, kind, await _policy(opened, settings), args.case_id)
            for case in cases:
                moot = case["state"] == "invalid" or (case["state"] == "refused" and not case["decided_at"])
                if case["subject_key"] == row.subject_key and moot:
                    raise CliError(
                        f"{kind.capitalize()} {args.case_id} is {case['state']} ({case['reason']}): a ruling would"
                        " change nothing."
                    )
            if not row.sealed_id:
                raise CliError(f"The identity of {row.display_id} was erased by retention: no ruling can name it.")
            subject = {"id_type": row.id_type, "id": opened.master.open_identity(row.subject_key, row.sealed_id)}
            data = {
                f"{kind}_id": args.case_id,
                "subject": subject,
                "outcome": args.outcome,
                "note": args.note,
                "decided_at": datetime.now(UTC).isoformat(),
            }
            return await _write(opened, f"{kind}.decided", data), f"{row.id_type} {row.display_id}"

    webhook_id, shown = asyncio.run(run())
    out.emit(
        {f"{kind}_id": args.case_id, "outcome": args.outcome, "webhook_id": webhook_id, "subject": shown},
        f"{kind.capitalize()} {args.case_id} of {shown}: {args.outcome}; the projector applies the ruling at its next"
        " step.",
    )
    return 0
