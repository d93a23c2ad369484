"""The HTTP edge: ``create_app(settings)`` and what its routes are made of.

app.py          create_app: routes, the resources opened at start (store, master key, registries, the policy in
                force, the projector), health and readiness
middleware.py   the one request middleware: request ids, a problem answer for every error, one log line a request
problems.py     ``application/problem+json`` answers (ProblemError) and the status and title of each type
body.py         reading a body within its size and time limits; JSON content types
ingest.py       POST /v1/webhooks/{source_id}: the checks in contract order, then the durable append
query.py        POST /v1/screenings and GET /v1/lists/changes
attestations.py POST /v1/attestations (a signed status) and GET /.well-known/jwks.json (the signing keys)
auth.py         API key authentication, scopes and the per-key rate
turn_batch.py   the work of one event-loop turn done together (ingest checks, screenings, access lines)
startup.py      what ``serve`` checks before it starts anything: its port (bound and held), the database, key, policy
workers.py      ``serve --workers N``: a supervisor and N gateway processes sharing one port
"""

from __future__ import annotations

from xinyong_gateway.web.app import create_app, settle_heap

__all__ = ["create_app", "settle_heap"]
