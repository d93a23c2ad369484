from __future__ import annotations

from tests.factories import event
from tests.gateway.conftest import Gateway


async def test_signed_event_is_accepted_then_duplicate(gateway: Gateway) -> None:
    source = await gateway.add_source("marketplace")
    body = event("review.manipulation_detected")
    first = await gateway.post(source, body, webhook_id="msg_a")
    assert first.status == 202, await first.text()
    assert await first.json() == {"status": "accepted", "webhook_id": "msg_a"}
    again = await gateway.post(source, body, webhook_id="msg_a")
    assert again.status == 200
    assert (await again.json())["status"] == "duplicate"
