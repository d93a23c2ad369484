"""Wire models of the gateway's answers to inbound events (docs/wire-contract.md, "Inbound events").

- 200/202: :class:`WebhookAck`, ``{"status": "accepted" | "duplicate", "webhook_id": "..."}``.
- every error: :class:`Problem`, an ``application/problem+json`` document (RFC 9457) with a stable
  ``type`` URI (:mod:`xinyong.problems`) and, for 422, ``errors``: JSON Pointers into the body.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from xinyong.wire import WireModel

__all__ = ["FieldError", "Problem", "WebhookAck"]


class WebhookAck(WireModel):
    """A stored event: 202 ``accepted``, or 200 ``duplicate`` when the same id and body were stored before."""

    status: Literal["accepted", "duplicate"]
    webhook_id: str


class FieldError(WireModel):
    """One schema error of a 422: where in the body (RFC 6901 JSON Pointer) and what is wrong.

    ``detail`` names the problem, never the value: the value may be personal information.
    """

    pointer: str = Field(description='JSON Pointer into the request body, e.g. "/data/merchant/id".')
    detail: str


class Problem(BaseModel):
    """An error answer (RFC 9457 problem details).

    Open to extension members, as RFC 9457 allows, so a client keeps what a newer gateway adds.
    """

    model_config = ConfigDict(extra="allow", frozen=True, hide_input_in_errors=True)

    type: str = Field(default="about:blank", description="Stable URI of the problem type.")
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None
    errors: list[FieldError] | None = Field(default=None, description="Schema errors of a 422.")
    request_id: str | None = Field(default=None, description="The id the gateway logged the request under.")
