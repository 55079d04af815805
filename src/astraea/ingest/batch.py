"""The value writes of one batch, committed together once every message is handled.

Group commit: a batch costs one transaction for its values however many messages it holds,
which is what makes ingestion fast with synchronous=FULL. The trigger deliveries the batch
fires go into that same transaction (an outbox), so a message's values and its trigger events
become durable together: a crash loses neither without the other, and the redelivered message
fires them again.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from astraea.bus.messages import DeviceMessage
from astraea.core.trigger_deliveries import NewDelivery, QueuedDelivery
from astraea.ingest.errors import DeviceError
from astraea.ingest.events import IngestEvent, PropertyChanged
from astraea.ingest.messages import DevicePublish, Outcome
from astraea.storage.base import PropertyChange, ValueRepository, ValueWrite


@dataclass(slots=True)
class Draft:
    """The outcome of one message while its batch is not yet committed."""

    error: DeviceError | None = None
    publishes: list[DevicePublish] = field(default_factory=list)
    events: list[IngestEvent] = field(default_factory=list)
    queued: list[tuple[str, QueuedDelivery]] = field(default_factory=list)

    def outcome(self) -> Outcome:
        return Outcome(self.error, tuple(self.publishes), tuple(self.events), tuple(self.queued))


class PendingWrites:
    def __init__(self) -> None:
        self._writes: list[ValueWrite] = []
        self._causes: list[tuple[DeviceMessage, Draft]] = []

    def write(self, write: ValueWrite, message: DeviceMessage, draft: Draft) -> None:
        """Queues a value write; the property changes it makes become events of `draft`."""
        self._writes.append(write)
        self._causes.append((message, draft))

    async def commit(
        self,
        values: ValueRepository,
        drafts: Sequence[Draft],
        deliveries_of: Callable[[Draft], list[NewDelivery]] | None = None,
    ) -> None:
        """Makes the writes durable in one transaction, with the deliveries `deliveries_of`
        finds in each draft once the property changes are known; the stored deliveries end
        up in their drafts' `queued`."""
        if deliveries_of is None:
            if self._writes:
                self._record(await values.apply(self._writes))
            return
        fired: list[tuple[Draft, NewDelivery]] = []

        def deliveries_for(changes: Sequence[tuple[PropertyChange, ...]]) -> list[NewDelivery]:
            self._record(changes)
            fired.extend((draft, new) for draft in drafts for new in deliveries_of(draft))
            return [new for _, new in fired]

        _, stored = await values.apply_and_queue(self._writes, deliveries_for)
        for (draft, new), row in zip(fired, stored, strict=True):
            if row is not None:  # None: the realm is gone
                draft.queued.append((new.policy, row))

    def _record(self, changes: Sequence[tuple[PropertyChange, ...]]) -> None:
        for (message, draft), made in zip(self._causes, changes, strict=True):
            if not made:  # samples change no property: most messages stop here
                continue
            draft.events.extend(
                PropertyChanged(
                    message.realm,
                    message.device_id,
                    message.received_at,
                    change.interface_name,
                    change.major,
                    change.path,
                    change.old,
                    change.new,
                )
                for change in made
            )
