"""OrderEventTrigger against the sandbox's Pub/Sub over TLS, run on an asyncio loop as the triggerer does."""

from __future__ import annotations

import asyncio
import time

from events_env import TOPIC, EventsEnv

from orderflow.events.trigger import OrderEventTrigger


def run_trigger(trigger: OrderEventTrigger) -> dict:
    async def first():
        async for event in trigger.run():
            return event.payload
        raise AssertionError("the trigger returned without an event")

    return asyncio.run(first())


def test_fires_with_the_first_event_after_the_position(events_env: EventsEnv):
    ids = events_env.order_ids[:2]
    events_env.approve(ids)
    after_first = (1).to_bytes(8, "big").hex()
    payload = run_trigger(OrderEventTrigger("salesforce_default", TOPIC, "CUSTOM", after_first, timeout=10))
    assert payload["status"] == "events"
    assert payload["first_event"]["replay_id"] == (2).to_bytes(8, "big").hex()
    assert payload["first_event"]["payload"]["OrderId__c"] == ids[1]


def test_ends_the_wait_task_itself_and_says_whether_the_drain_must_fetch(events_env: EventsEnv):
    """With ``start`` the trigger ends the task (TaskSuccessEvent, the result as XCom): no resume on a
    worker. ``caught_up`` is true only when the event was the topic's latest, so the drain skips its fetch."""
    from airflow.triggers.base import TaskSuccessEvent

    def first_event(trigger: OrderEventTrigger):
        async def first():
            async for event in trigger.run():
                return event
            raise AssertionError("the trigger returned without an event")

        return asyncio.run(first())

    start = {"preset": "EARLIEST", "replay_id": "", "reason": "test"}
    ids = events_env.order_ids[:2]
    events_env.approve(ids[:1])
    one = first_event(OrderEventTrigger("salesforce_default", TOPIC, "EARLIEST", timeout=10, start=start))
    assert isinstance(one, TaskSuccessEvent)
    result = one.xcoms["return_value"]
    assert result["status"] == "events" and result["caught_up"] is True and result["fetched_at"]
    assert result["first_event"]["payload"]["OrderId__c"] == ids[0] and result["start"]["preset"] == "EARLIEST"

    events_env.approve(ids[1:])  # now a second event is behind the first: the drain has to fetch it
    two = first_event(OrderEventTrigger("salesforce_default", TOPIC, "EARLIEST", timeout=10, start=start))
    assert two.xcoms["return_value"]["caught_up"] is False


def test_latest_waits_for_a_new_event(events_env: EventsEnv):
    events_env.approve(events_env.order_ids[:1])  # history: must not fire on it

    async def scenario():
        task = asyncio.ensure_future(_first(OrderEventTrigger("salesforce_default", TOPIC, "LATEST", "", 10)))
        await asyncio.sleep(1.0)
        assert not task.done()
        await asyncio.to_thread(events_env.approve, events_env.order_ids[1:2])
        return await task

    payload = asyncio.run(scenario())
    assert payload["status"] == "events"
    assert payload["first_event"]["payload"]["OrderId__c"] == events_env.order_ids[1]


async def _first(trigger: OrderEventTrigger) -> dict:
    async for event in trigger.run():
        return event.payload
    raise AssertionError("no event")


def test_times_out_with_a_later_safe_position(events_env: EventsEnv):
    events_env.approve(events_env.order_ids[:1])
    started = time.monotonic()
    payload = run_trigger(OrderEventTrigger("salesforce_default", TOPIC, "CUSTOM", events_env.latest_replay_hex(),
                                            timeout=1.5))
    assert payload["status"] == "timeout" and 1.4 <= time.monotonic() - started < 6
    assert payload["position"] in ("", events_env.latest_replay_hex())


def test_corrupted_replay_id_is_reported(events_env: EventsEnv):
    payload = run_trigger(OrderEventTrigger("salesforce_default", TOPIC, "CUSTOM", "00000000000fffff", timeout=5))
    assert payload["status"] == "corrupted"


def test_revoked_token_is_refreshed_once(events_env: EventsEnv):
    from orderflow.salesforce.hook import SalesforceJwtHook

    events_env.approve(events_env.order_ids[:1])
    SalesforceJwtHook().get_conn().get_access_token()  # the token the trigger will find in the shared cache
    events_env.admin("DELETE", "/tokens")  # every issued access token is now refused
    logins = events_env.stats()["logins"]
    payload = run_trigger(OrderEventTrigger("salesforce_default", TOPIC, "EARLIEST", "", timeout=10))
    assert payload["status"] == "events"
    assert events_env.stats()["logins"] == logins + 1
