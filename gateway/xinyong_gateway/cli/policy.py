"""``xinyong-gateway policy check|diff|apply``: validate and explain a policy file, dry-run it over the whole inbox,
adopt it (``credit.policy_tools``, ``Projector.reproject``). An adoption is recorded in the audit log."""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import sys
from pathlib import Path
from typing import Any

from xinyong_gateway.cli._common import (
    CliError,
    Output,
    Progress,
    add_command,
    iso,
    open_resources,
    plural,
    policy_option,
    run_until_interrupted,
)
from xinyong_gateway.errors import GatewayError, ProjectionConflictError
from xinyong_gateway.settings import GatewaySettings

__all__ = ["add_parser"]

_DIFF_DESCRIPTION = (
    "Dry run: replay the whole inbox, in order, under the current policy and under FILE with the pure engine,\n"
    "and compare every subject's status now: a from -> to matrix over black, watch, red and none, and examples\n"
    "of each move with the reason codes gained and lost (resident ids masked). Nothing is written to the\n"
    "database; Ctrl-C stops it (exit 130). Progress goes to stderr.\n\n"
    "Memory: every subject's credit file, under both policies, is kept in memory while it runs."
)


def add_parser(commands: Any) -> None:
    policy = add_command(
        commands,
        "policy",
        "check, compare (dry run) and adopt credit policies",
        "xinyong-gateway policy check new.toml",
    )
    actions = policy.add_subparsers(dest="policy_command", metavar="ACTION", required=True)
    check = add_command(
        actions,
        "check",
        "validate a policy file and explain each of its rules",
        "xinyong-gateway policy check new.toml",
        description="Validate a policy file and explain each of its rules in one line (exit 1 when it is invalid).",
    )
    check.add_argument("file", metavar="FILE", nargs="?", help="policy file (default: the current policy)")
    check.set_defaults(handler=_check)
    diff = add_command(
        actions,
        "diff",
        "dry run: who would move between lists under FILE's policy",
        "xinyong-gateway policy diff new.toml --examples 5",
        description=_DIFF_DESCRIPTION,
    )
    diff.add_argument("file", metavar="FILE", help="the new policy")
    policy_option(diff, "current policy")
    diff.add_argument("--examples", type=int, default=3, metavar="N", help="examples per move (default 3)")
    diff.set_defaults(handler=_diff)
    apply = add_command(
        actions,
        "apply",
        "adopt a policy: replay the inbox and replace every credit file",
        "xinyong-gateway policy apply new.toml",
        description="Adopt a policy: replay the whole inbox under it and replace every credit file in one"
        " transaction.\nProgress goes to stderr; Ctrl-C before the commit changes nothing (exit 130).",
    )
    apply.add_argument("file", metavar="FILE", help="the policy to adopt (its version must be new, or the same text)")
    apply.set_defaults(handler=_apply)


def _check(settings: GatewaySettings, args: argparse.Namespace, out: Output) -> int:
    from xinyong_gateway.credit import policy_tools
    from xinyong_gateway.credit.policy import PolicyError, load_policy, policy_from

    source = str(args.file or settings.policy_file or "the shipped default policy")
    try:
        checked = load_policy(args.file) if args.file else policy_from(settings.policy_file)
    except PolicyError as exc:
        if out.json:
            out.emit({"file": source, "valid": False, "errors": str(exc).splitlines()}, "")
        sys.stderr.write(f"xinyong-gateway: error: {exc}\n")
        return 1
    general = {
        "publicity": policy_tools.explain_publicity(checked),
        "score": policy_tools.explain_score(checked),
        "measures": policy_tools.explain_measures(checked),
        "red": policy_tools.explain_red(checked),
        "retention": policy_tools.explain_retention(checked),
    }
    rules = [{"id": rule.id, "explanation": policy_tools.explain_rule(rule, checked)} for rule in checked.rules]
    human = [f"{source} is valid: policy {checked.version}, {plural(len(rules), 'rule')}.", *general.values(), "rules:"]
    human += [f"  {rule['explanation']}" for rule in rules]
    document = {"file": source, "version": checked.version, "valid": True, **general, "rules": rules}
    out.emit(document, "\n".join(human))
    return 0


def _diff(settings: GatewaySettings, args: argparse.Namespace, out: Output) -> int:
    from xinyong_gateway.credit import policy_tools
    from xinyong_gateway.credit.in_force import PolicyInForce
    from xinyong_gateway.credit.policy import load_policy, policy_from

    if args.examples < 0:
        raise CliError("--examples must be 0 or more.")
    current, candidate = policy_from(settings.policy_file), load_policy(args.file)
    display = Progress("policy diff", settings.progress_interval)
    replayed = total = 0

    def progress(done: int, of: int) -> None:
        nonlocal replayed, total
        replayed, total = done, of
        display.show(f"replaying the inbox: {done:,} of {plural(of, 'event')} ({100 * done / max(of, 1):.0f}%)")

    async def run() -> policy_tools.DryRun:
        async with open_resources(settings) as opened:
            in_force = await PolicyInForce(opened.store, current).refresh()  # a policy adopted with `policy apply` wins
            return await policy_tools.dry_run(
                opened.store, opened.master, in_force, candidate, examples=args.examples, progress=progress
            )

    def interrupted() -> str:
        return (
            f"Interrupted after replaying {replayed:,} of {plural(total, 'event')}; a dry run writes nothing, so"
            " running it again is safe."
        )

    try:
        result = run_until_interrupted(run(), interrupted)
    finally:
        display.close()
    out.emit(policy_tools.diff_document(result), "\n".join(policy_tools.diff_lines(result)))
    return 0


def _apply(settings: GatewaySettings, args: argparse.Namespace, out: Output) -> int:
    from xinyong_gateway.credit.policy import load_policy, policy_from
    from xinyong_gateway.credit.projector import Projector

    policy = load_policy(args.file)  # a clear error for a missing or invalid file
    text = Path(args.file).read_text(encoding="utf-8")  # adopted as written, comments and all
    display = Progress("policy apply", settings.progress_interval)
    replayed = total = 0
    in_force_after: str | None = None  # after Ctrl-C: the version in force once the command has unwound

    async def run() -> dict[str, Any]:
        nonlocal total, in_force_after
        async with open_resources(settings) as opened:
            store = opened.store
            total = await store.inbox_count()

            def progress(done: int) -> None:
                nonlocal replayed
                replayed = done
                display.show(
                    f"replaying the inbox under {policy.version}: {done:,} of {plural(total, 'event')}"
                    f" ({100 * done / max(total, 1):.0f}%)"
                )

            previous = await store.active_policy()
            try:
                replayed_all, changed = await Projector(store, opened.master, policy).reproject(
                    policy, text, progress=progress
                )
            except asyncio.CancelledError:  # Ctrl-C: did the one commit happen before it? Ask the database.
                active = await store.active_policy()
                in_force_after = active.version if active else None
                raise
            details = {
                "previous_version": previous.version if previous else None,
                "text_sha256": hashlib.sha256(text.encode()).hexdigest(),
                "events": replayed_all,
                "subjects_changed": changed,
            }
            await opened.audit("policy.apply", policy.version, details)
            return {
                "version": policy.version,
                "previous_version": previous.version if previous else None,
                "events": replayed_all,
                "subjects_changed": changed,
                "history": [
                    {"version": adoption.version, "adopted_at": iso(adoption.adopted_at), "active": adoption.active}
                    for adoption in await store.policy_history()
                ],
            }

    def interrupted() -> str:
        if in_force_after == policy.version:
            return (
                f"Interrupted, but the commit had been made: policy {policy.version} is adopted and in force"
                " (running the command again changes nothing)."
            )
        in_force = in_force_after or policy_from(settings.policy_file).version  # none adopted: the configured one
        return (
            f"Interrupted after replaying {replayed:,} of {plural(total, 'event')}, before anything was written:"
            f" policy {in_force} stays in force, and running the command again is safe."
        )

    try:
        result = run_until_interrupted(run(), interrupted)
    except ProjectionConflictError as exc:
        raise GatewayError(
            "The projector moved on while the policy was being applied, so nothing was written; run the command"
            " again (or stop the gateway's projector while applying)."
        ) from exc
    finally:
        display.close()
    out.emit(
        result,
        f"Adopted policy {result['version']}: replayed {plural(result['events'], 'event')};"
        f" {plural(result['subjects_changed'], 'subject')} changed list, grade or measures (each change is in the feed"
        " with the new version).",
    )
    return 0
