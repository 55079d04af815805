"""Trigger deliveries as they are queued and as a queue holds them.

A queue is named by its policy; names starting with `@` are reserved for the engine's own
queues (`@default`: triggers without a policy; `@amqp`: AMQP actions), so they never collide
with a user policy. Times are milliseconds since the epoch.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from astraea.core.trigger_actions import Action, AmqpAction
from astraea.core.trigger_policies import DEFAULT_POLICY_NAME, Policy


@dataclass(frozen=True, slots=True)
class NewDelivery:
    realm: str
    policy: str
    device_id: str  # canonical id
    trigger_id: uuid.UUID
    simple_trigger_id: uuid.UUID
    event_type: str  # e.g. `incoming_data_event`
    event: bytes  # the encoded SimpleEvent
    enqueued_at: int
    expires_at: int | None  # None: no TTL


@dataclass(frozen=True, slots=True)
class QueuedDelivery:
    seq: int  # orders the queue and identifies the delivery
    device_id: str
    trigger_id: uuid.UUID
    event: bytes
    enqueued_at: int
    expires_at: int | None
    attempts: int  # failed attempts so far
    next_attempt_at: int


AMQP_QUEUE = "@amqp"


def queue_of(action: Action, policy: Policy | None) -> tuple[str, int | None]:
    """The queue a matched event of a trigger goes to, and its TTL in ms (None: none).

    HTTP actions go to their policy's queue (`@default` without one); AMQP actions go to
    `@amqp`, where, like Astarte's publisher, they are retried until the broker confirms them
    and policies do not apply.
    """
    if isinstance(action, AmqpAction):
        return AMQP_QUEUE, None
    if policy is None:
        return DEFAULT_POLICY_NAME, None
    return policy.name, None if policy.event_ttl is None else policy.event_ttl * 1000
