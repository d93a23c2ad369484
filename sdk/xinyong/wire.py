"""The one base class of every wire model (events, subjects, responses).

Wire models are evidence: they are strict (no coercion of ``"5"`` into ``5``), forbid unknown
fields (a typo such as ``"confirmd"`` is an error, never silently ignored), are immutable once
validated, and keep the input out of error messages (it may hold a resident identity number).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

__all__ = ["WIRE_CONFIG", "WireModel"]

#: The configuration every wire model shares; also used for type adapters over wire models.
WIRE_CONFIG = ConfigDict(extra="forbid", strict=True, frozen=True, hide_input_in_errors=True)


class WireModel(BaseModel):
    """Base of every wire model: strict, closed to unknown fields, frozen, input hidden in errors."""

    model_config = WIRE_CONFIG
