"""The policy in force: the one adopted in the database (``policy apply``) when there is one, else the configured file.

Statuses are computed under it wherever they are computed: by the projector (it refreshes before each step), by
screening (the status of a file that time alone changed, and the version named for a subject never reported; the
gateway refreshes it every ``api_key_refresh_interval`` seconds) and by ``policy diff`` (the current side).
"""

from __future__ import annotations

from xinyong_gateway.credit.policy import Policy, parse_policy
from xinyong_gateway.store import Store

__all__ = ["PolicyInForce"]


class PolicyInForce:
    """The adopted policy wins over the configured one; :meth:`refresh` re-reads which is adopted, and parses an
    adopted policy's text only when its version is not the one in force already."""

    def __init__(self, store: Store, configured: Policy) -> None:
        self._store = store
        self._configured = configured
        self.policy = configured
        """The policy in force since the last :meth:`refresh` (the projector sets it when it adopts one)."""

    async def refresh(self) -> Policy:
        """Re-read the adopted policy from the store; return the policy in force now."""
        adopted = await self._store.active_policy()
        if adopted is None:
            self.policy = self._configured
        elif adopted.version != self.policy.version:
            self.policy = parse_policy(adopted.text, source=f"adopted policy {adopted.version}")
        return self.policy
