"""The value writes of one batch, committed together once every message is handled.

Group commit: a batch costs one transaction for its values however many messages it holds,
which is what makes ingestion fast with synchronous=FULL.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from astraea.ingest.errors import DeviceError
from astraea.ingest.events import IngestEvent, PropertyChanged
from astraea.ingest.messages import DeviceMessage, DevicePublish, Outcome
from astraea.storage.base import ValueRepository, ValueWrite


@dataclass(slots=True)
class Draft:
    """The outcome of one message while its batch is not yet committed."""

    error: DeviceError | None = None
    publishes: list[DevicePublish] = field(default_factory=list)
    events: list[IngestEvent] = field(default_factory=list)

    def outcome(self) -> Outcome:
        return Outcome(self.error, tuple(self.publishes), tuple(self.events))


class PendingWrites:
    def __init__(self) -> None:
        self._writes: list[ValueWrite] = []
        self._causes: list[tuple[DeviceMessage, Draft]] = []

    def write(self, write: ValueWrite, message: DeviceMessage, draft: Draft) -> None:
        """Queues a value write; the property changes it makes become events of `draft`."""
        self._writes.append(write)
        self._causes.append((message, draft))

    async def commit(self, values: ValueRepository) -> None:
        """Makes the writes durable in one transaction."""
        if not self._writes:
            return
        changes = await values.apply(self._writes)
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
