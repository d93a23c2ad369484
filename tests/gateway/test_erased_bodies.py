"""An erased body (retention, ``credit/inbox.py``) replays like the body it replaced: for any log and any subset of
it erased, a full replay gives the same credit files, and no erased body holds a person's identifier or name."""

from __future__ import annotations

import base64
import random
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from tests.factories import event, fact_time_field, make_uscc, person
from xinyong.events import EVENT_TYPES
from xinyong.subjects import Subject
from xinyong_gateway.credit.engine import LoggedEvent, project
from xinyong_gateway.credit.inbox import erased_body, read_logged
from xinyong_gateway.credit.policy import default_policy
from xinyong_gateway.crypto import MasterKey
from xinyong_gateway.store import StoredEvent

MASTER = MasterKey.from_text(base64.b64encode(bytes(range(32))).decode())
POLICY = default_policy()
START = datetime(2015, 1, 1, tzinfo=UTC)
TYPES = ("listing.violation", "complaint.filed", "review.manipulation_detected", "commitment.published")


def key_of(subject: Subject) -> str:
    return MASTER.subject_key(subject.id_type, subject.id)


def stored(logged: LoggedEvent, body: bytes) -> StoredEvent:
    sealed = MASTER.seal_body(logged.source_id, logged.webhook_id, body)
    return StoredEvent(logged.seq, logged.source_id, logged.webhook_id, logged.event.type, 0, "", 0, b"", sealed, 0)


@given(
    st.lists(
        st.tuples(st.sampled_from(TYPES), st.integers(0, 5), st.integers(0, 2000), st.booleans()),
        min_size=1,
        max_size=25,
    ),
    st.integers(0, 2**32),
)
def test_a_replay_of_erased_bodies_gives_the_same_files(plan: list[tuple[str, int, int, bool]], seed: int) -> None:
    rng = random.Random(seed)
    who = [person(rng, name=f"人{n}") for n in range(3)] + [
        {"id_type": "uscc", "id": make_uscc(rng), "name": "公司"} for _ in range(3)
    ]
    originals, erased = [], []
    for seq, (event_type, subject, day, erase) in enumerate(plan, start=1):
        at = (START + timedelta(days=day)).isoformat()
        body = event(event_type, rng, merchant=who[subject], **{fact_time_field(event_type): at})
        parsed = EVENT_TYPES[event_type].model_validate(body, context={"now": datetime(9999, 1, 1, tzinfo=UTC)})
        logged = LoggedEvent(seq, "src_a", f"wh_{seq}", parsed)
        originals.append(logged)
        replacement = erased_body(logged, MASTER) if erase else None
        if replacement is None:
            erased.append(logged)
            continue
        for named in (who[subject]["id"], who[subject]["name"]):
            assert named.encode() not in replacement
        erased.append(read_logged(stored(logged, replacement), MASTER))
    before, after = project(originals, POLICY, key_of), project(erased, POLICY, key_of)
    assert before.keys() == after.keys()
    assert all(before[key].to_json() == after[key].to_json() for key in before)


def test_a_body_that_names_no_person_is_not_erased() -> None:
    rng = random.Random(3)
    body = event("complaint.filed", rng)
    parsed = EVENT_TYPES["complaint.filed"].model_validate(body, context={"now": datetime(9999, 1, 1, tzinfo=UTC)})
    assert erased_body(LoggedEvent(1, "src_a", "wh_1", parsed), MASTER) is None
