"""The send fence's batching: many senders' "about to send" marks in one transaction.

Every send passes `OutboxRepository.mark_sending` right before its request (see `dispatcher`), so that after a
crash the rows never tried are told from those that may have gone out; the same transaction reads the rows'
contacts, so the consent rule takes its last look at them as they are at the moment of sending. One transaction
per send would cost a commit (an fsync on SQLite) per message; here the marks of every sender that arrives
within `linger_s` share one, so a dispatcher pays at most 1 / `linger_s` commits a second whatever its rate, and
a send waits about `linger_s` plus one commit for its mark.
"""

from __future__ import annotations

import asyncio
import logging

from waflow.store import Store
from waflow.store.contacts import ContactRecord

log = logging.getLogger("waflow.outbox")
Marked = tuple[bool, ContactRecord | None]  # (the row is ours to send, its contact read with the mark)


class SendFence:
    # 5 ms: at most ~150 commits a second; a longer linger delays every send by as much, and a dispatcher whose
    # senders are all busy (its concurrency) then sends less (measured: 20 ms cut two processes from 80 to 66/s)
    def __init__(self, store: Store, claimer: str, *, linger_s: float = 0.005) -> None:
        self.store = store
        self.claimer = claimer
        self.linger_s = linger_s
        # outbox id -> (number, contact key) of the row when its contact is wanted, and the sender's future
        self._pending: dict[int, tuple[tuple[str, str] | None, asyncio.Future[Marked]]] = {}
        self._flusher: asyncio.Task[None] | None = None
        self.commits = 0

    async def mark(self, outbound_id: int, contact: tuple[str, str] | None = None) -> Marked:
        """Once the row is durably marked as being sent by us: (True, the contact named by `contact` — (number,
        contact key) — as it is now, read in the same transaction, for the consent rule's last look; None when
        not asked for); (False, None) when its lease is no longer ours (it must not be sent). Raises what the
        store raised (the row is still ours: hand it back)."""
        future: asyncio.Future[Marked] = asyncio.get_running_loop().create_future()
        self._pending[outbound_id] = (contact, future)
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.get_running_loop().create_task(self._flush(), name="waflow-outbox-fence")
        return await future

    async def _flush(self) -> None:
        while self._pending:
            await asyncio.sleep(self.linger_s)
            batch, self._pending = self._pending, {}
            try:
                async with self.store.begin() as conn:
                    marked = await self.store.outbox.mark_sending(conn, self.claimer, list(batch))
                    found: dict[tuple[str, str], ContactRecord] = {}
                    wanted = {where for where, _ in batch.values() if where is not None}
                    for number in {n for n, _ in wanted}:
                        keys = sorted({k for n, k in wanted if n == number})
                        for key, record in (await self.store.outbox.recipients(conn, number, keys)).items():
                            found[(number, key)] = record
                self.commits += 1
            except Exception as exc:  # every waiting sender hears it: hands its row back
                for _, future in batch.values():
                    if not future.done():
                        future.set_exception(exc)
                continue
            for oid, (where, future) in batch.items():
                if not future.done():
                    contact = found.get(where) if where is not None else None
                    future.set_result((True, contact) if oid in marked else (False, None))
