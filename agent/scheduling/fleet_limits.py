"""Per-address politeness across every worker sharing one PostgreSQL database.

:class:`probes.net.scope.AddressLimits` bounds the connections one process opens to
an address. With workers on several machines, each would open that many: the bound
must hold across the fleet. :class:`FleetAddressLimits` adds, to every local slot, one
of ``per_address_concurrency`` fleet slots per address: PostgreSQL session advisory
locks ``(hash(address), slot)`` held on one connection of the worker for as long as
the socket is open (plus the local linger). A worker that dies loses its connection,
and PostgreSQL frees its slots with it: no lease to wait out.

A worker that finds every fleet slot taken closes its own idle pooled connections to
that address (they hold slots too) and tries again shortly: two workers each holding
idle connections while wanting one more cannot wait on each other for ever.
"""

from __future__ import annotations

import asyncio
import contextlib
import zlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from probes.net.scope import AddressLimits

if TYPE_CHECKING:
    from psycopg import AsyncConnection

RETRY = 0.05  # seconds between tries when every fleet slot of an address is held elsewhere
NAMESPACE = "posture:address:"


def address_key(address: str) -> int:
    """The first advisory-lock key of ``address`` (a signed 32-bit integer, stable across hosts)."""
    value = zlib.crc32((NAMESPACE + address).encode())
    return value - (1 << 32) if value >= (1 << 31) else value


class FleetAddressLimits(AddressLimits):
    """:class:`AddressLimits` whose slots are also held in PostgreSQL, for the whole fleet."""

    def __init__(self, conninfo: str, per_address_concurrency: int = 4, budget: int = 300, *,
                 window: float = 3600.0, linger: float = 0.05) -> None:
        super().__init__(per_address_concurrency, budget, window=window, linger=linger)
        self.conninfo = conninfo
        self._conn: AsyncConnection[tuple[Any, ...]] | None = None
        self._io = asyncio.Lock()
        self._held: dict[str, set[int]] = {}  # address -> fleet slots this process holds
        self._leaving: dict[str, set[int]] = {}  # address -> fleet slots being unlocked
        self._unlocking: set[asyncio.Task[None]] = set()

    async def _connection(self) -> AsyncConnection[tuple[Any, ...]]:
        from psycopg import AsyncConnection

        if self._conn is None or self._conn.closed:
            self._conn = await AsyncConnection.connect(self.conninfo, autocommit=True)
        return self._conn

    async def _try(self, address: str, slots: list[int]) -> list[int]:
        """Take as many of ``slots`` as are free in the fleet; returns those taken."""
        key = address_key(address)
        async with self._io:
            conn = await self._connection()
            got = []
            for slot in slots:
                cur = await conn.execute("SELECT pg_try_advisory_lock(%s, %s)", (key, slot))
                row = await cur.fetchone()
                if row is not None and row[0]:
                    got.append(slot)
            return got

    async def _unlock(self, address: str, slots: list[int]) -> None:
        """Unlock ``slots`` (moved to ``leaving`` by the caller): offered again once unlocked."""
        key = address_key(address)
        try:
            async with self._io:
                conn = await self._connection()
                for slot in slots:
                    await conn.execute("SELECT pg_advisory_unlock(%s, %s)", (key, slot))
        except Exception:  # the connection is gone: PostgreSQL freed its locks with it
            with contextlib.suppress(Exception):
                if self._conn is not None:
                    await self._conn.close()
            self._conn = None
        finally:
            self._leaving.setdefault(address, set()).difference_update(slots)

    def _give_back(self, address: str, slots: list[int]) -> list[int]:
        self._held.setdefault(address, set()).difference_update(slots)
        self._leaving.setdefault(address, set()).update(slots)
        return slots

    async def _take(self, address: str, count: int) -> list[int]:
        """``count`` fleet slots of ``address``, all at once (none held while waiting for more)."""
        held = self._held.setdefault(address, set())
        leaving = self._leaving.setdefault(address, set())
        while True:
            # Advisory locks are re-entrant within a session: never try one this process holds.
            free = [s for s in range(self.per_address_concurrency) if s not in held and s not in leaving]
            if len(free) >= count:
                got = await self._try(address, free[:count] if count == 1 else free)
                mine, extra = (got[:count], got[count:]) if len(got) >= count else ([], got)
                held.update(mine)
                if extra:
                    await self._unlock(address, self._give_back(address, extra))
                if mine:
                    return mine
            for reclaim in list(self._slot(address).reclaimers):
                await reclaim()  # our idle pooled connections hold fleet slots too
            await asyncio.sleep(RETRY)

    async def acquire(self, address: str) -> None:
        await super().acquire(address)
        try:
            await self._take(address, 1)
        except BaseException:
            super().release(address)
            raise

    def release(self, address: str) -> None:
        held = sorted(self._held.get(address, ()))
        super().release(address)
        if not held:
            return
        slots = self._give_back(address, held[-1:])

        async def later() -> None:
            await asyncio.sleep(self.linger)
            await self._unlock(address, slots)

        try:
            task = asyncio.get_running_loop().create_task(later())
        except RuntimeError:  # no loop: the process is ending, and its connection with it
            return
        self._unlocking.add(task)
        task.add_done_callback(self._unlocking.discard)

    @asynccontextmanager
    async def hold_all(self, address: str) -> AsyncIterator[int]:
        """Every slot of ``address`` in this process and in the fleet (nmap): all or none at a time."""
        slot = self._slot(address)
        taken = 0
        async with slot.many:
            try:
                for _ in range(self.per_address_concurrency):
                    await AddressLimits.acquire(self, address)
                    taken += 1
                fleet = await self._take(address, self.per_address_concurrency)
                try:
                    yield taken
                finally:
                    await asyncio.sleep(self.linger)
                    await self._unlock(address, self._give_back(address, fleet))
            finally:
                for _ in range(taken):
                    AddressLimits.release(self, address)

    async def aclose(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                await self._conn.close()
            self._conn = None
