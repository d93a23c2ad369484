"""Credit: the pure engine, the policy, the projector and the documents they produce.

    engine.py        the pure projection: (events, policy, time) -> credit files, records, status, grades (no I/O)
    policy.py        the credit policy: a versioned TOML file, validated on load (pure but for reading the file)
    documents.py     a status as JSON (what the store keeps, the feed carries and screening serves), the one decision
                     rule read back from it, names as they may be shown
    inbox.py         the inbox as the engine reads it: an event's partitions, a stored row decoded
    in_force.py      the policy in force: the adopted one wins over the configured file
    projector.py     the edge around the engine: applies the inbox to credit files in the store, lets time pass
    policy_tools.py  a policy explained in plain language; a dry run of a new policy over the whole inbox
    report.py        a regulator's report of one credit file

Modules are imported by path (``xinyong_gateway.credit.engine``); this package re-exports nothing, so that importing
the engine (the projection benchmark, the mutation tests) loads no storage.
"""

from __future__ import annotations

__all__: list[str] = []
