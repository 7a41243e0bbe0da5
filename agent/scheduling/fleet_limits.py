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
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from probes.net.scope import AddressLimits

if TYPE_CHECKING:
    from psycopg import AsyncConnection

RETRY = 0.05  # seconds between tries when every fleet slot of an address is held elsewhere
NAMESPACE = "posture:address:"


TASK_NAMESPACE = zlib.crc32(b"posture:task") & 0x7FFFFFFF


def task_key(job_id: int) -> int:
    """A procrastinate job id as the second advisory-lock key (int4)."""
    return job_id % (1 << 31)


def address_key(address: str) -> int:
    """The first advisory-lock key of ``address`` (a signed 32-bit integer, stable across hosts)."""
    value = zlib.crc32((NAMESPACE + address).encode())
    return value - (1 << 32) if value >= (1 << 31) else value


class FleetAddressLimits(AddressLimits):
    """:class:`AddressLimits` whose slots are also held in PostgreSQL, for the whole fleet."""

    def __init__(self, conninfo: str, per_address_concurrency: int = 4, budget: int = 300, *,
                 window: float = 3600.0, linger: float = 0.05, keepalive: float = 60.0) -> None:
        super().__init__(per_address_concurrency, budget, window=window, linger=linger)
        self.conninfo = conninfo
        self.keepalive = keepalive  # seconds: the stall timeout
        self._conn: AsyncConnection[tuple[Any, ...]] | None = None
        self._io = asyncio.Lock()
        self._held: dict[str, set[int]] = {}  # address -> fleet slots this process holds
        self._leaving: dict[str, set[int]] = {}  # address -> fleet slots being unlocked
        self._unlocking: set[asyncio.Task[None]] = set()
        self._markers: set[str] = set()  # addresses whose turn marker this process holds
        self._waiting: dict[str, int] = {}  # address -> coroutines of this process waiting for a slot

    async def _connection(self) -> AsyncConnection[tuple[Any, ...]]:
        from psycopg import AsyncConnection

        if self._conn is None or self._conn.closed:
            self._conn = await AsyncConnection.connect(self.conninfo, autocommit=True)
            # The server drops this session (and every lock it holds) within about this long
            # of the worker's machine going silent, not after the kernel's two hours.
            idle = max(int(self.keepalive), 1)
            await self._conn.execute(f"SET tcp_keepalives_idle = {idle}")
            await self._conn.execute(f"SET tcp_keepalives_interval = {max(idle // 3, 1)}")
            await self._conn.execute("SET tcp_keepalives_count = 3")
        return self._conn

    # -- a running task's liveness ----------------------------------------------------------

    async def hold_task(self, job_id: int) -> bool:
        """Hold ``job_id``'s liveness lock while its task runs: the scheduler hands a job back
        only when no live session holds it (heartbeats alone can be late on a loaded machine).
        False: a live session holds it already (an earlier attempt still running)."""
        async with self._io:
            conn = await self._connection()
            return await self._one(conn, "SELECT pg_try_advisory_lock(%s, %s)", (TASK_NAMESPACE, task_key(job_id)))

    async def release_task(self, job_id: int) -> None:
        try:
            async with self._io:
                conn = await self._connection()
                await conn.execute("SELECT pg_advisory_unlock(%s, %s)", (TASK_NAMESPACE, task_key(job_id)))
        except Exception:  # the session is gone, and the lock with it
            self._conn = None

    async def _one(self, conn: AsyncConnection[tuple[Any, ...]], sql: str, args: tuple[int, ...]) -> bool:
        cur = await conn.execute(sql, args)  # type: ignore[arg-type]  # fixed statements of this module
        row = await cur.fetchone()
        return bool(row is not None and row[0])

    async def _try(self, address: str, slots: list[int], want: int, eager: bool) -> list[int]:
        """Take up to ``want`` of ``slots``, trying each in turn; returns those taken.

        Fairness: a process that already waited takes the address's turn marker (slot
        number ``per_address_concurrency``) if it can; while another process holds the
        marker, this one does not compete for slots. Without it, a busy worker that frees
        a slot and takes it straight back could starve another for good.
        """
        key, marker = address_key(address), self.per_address_concurrency
        async with self._io:
            conn = await self._connection()
            mine = address in self._markers
            if not mine and eager and await self._one(conn, "SELECT pg_try_advisory_lock(%s, %s)", (key, marker)):
                self._markers.add(address)
                mine = True
            if not mine and not await self._one(
                    conn, "SELECT CASE WHEN pg_try_advisory_lock(%s, %s) THEN pg_advisory_unlock(%s, %s) "
                          "ELSE false END", (key, marker, key, marker)):
                return []  # another process has waited longer: its turn
            # Computed under the lock: advisory locks are re-entrant within a session, so a slot
            # another coroutine of this process took meanwhile would be granted twice.
            held, leaving = self._held.setdefault(address, set()), self._leaving.setdefault(address, set())
            got: list[int] = []
            for slot in [s for s in slots if s not in held and s not in leaving]:
                if len(got) >= want:
                    break
                if await self._one(conn, "SELECT pg_try_advisory_lock(%s, %s)", (key, slot)):
                    got.append(slot)
            if len(got) >= want:
                held.update(got)
                if address in self._markers:
                    await self._drop_marker(conn, address)
            return got

    async def _drop_marker(self, conn: AsyncConnection[tuple[Any, ...]], address: str) -> None:
        self._markers.discard(address)
        await conn.execute("SELECT pg_advisory_unlock(%s, %s)", (address_key(address), self.per_address_concurrency))

    async def _give_up_turn(self, address: str) -> None:
        """No coroutine of this process waits for ``address`` any more: let the others have their turn."""
        try:
            async with self._io:
                if address in self._markers and not self._waiting.get(address):
                    await self._drop_marker(await self._connection(), address)
        except Exception:
            self._markers.discard(address)

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

    async def _attempt(self, address: str, free: list[int], count: int, eager: bool) -> list[int]:
        """One try for ``count`` slots, all or none, its bookkeeping done before it returns."""
        got = await self._try(address, free, count, eager)
        if len(got) == count:
            return got  # recorded as held by _try
        if got:  # all or none: never sit on some while waiting for the rest
            await self._unlock(address, self._give_back(address, got))
        return []

    def _abandon(self, address: str, attempt: asyncio.Task[list[int]]) -> None:
        """The caller was cancelled while its try ran: give back what the try took."""
        if attempt.cancelled() or attempt.exception() is not None or not attempt.result():
            return
        slots = self._give_back(address, attempt.result())
        task = asyncio.get_running_loop().create_task(self._unlock(address, slots))
        self._unlocking.add(task)
        task.add_done_callback(self._unlocking.discard)

    async def _take(self, address: str, count: int) -> list[int]:
        """``count`` fleet slots of ``address``, all at once (none held while waiting for more)."""
        held = self._held.setdefault(address, set())
        leaving = self._leaving.setdefault(address, set())
        self._waiting[address] = self._waiting.get(address, 0) + 1
        rounds = 0
        try:
            while True:
                # Advisory locks are re-entrant within a session: never try one this process holds.
                free = [s for s in range(self.per_address_concurrency) if s not in held and s not in leaving]
                if len(free) >= count:
                    # Shielded: a probe's deadline cancelling us mid-query must not lose a lock
                    # PostgreSQL granted (it would be held, and counted, for the worker's life).
                    attempt = asyncio.ensure_future(self._attempt(address, free, count, rounds > 0))
                    try:
                        got = await asyncio.shield(attempt)
                    except asyncio.CancelledError:
                        attempt.add_done_callback(lambda t: self._abandon(address, t))
                        raise
                    if got:
                        return got
                rounds += 1
                for reclaim in list(self._slot(address).reclaimers):
                    await reclaim()  # our idle pooled connections hold fleet slots too
                await asyncio.sleep(RETRY)
        finally:
            self._waiting[address] -= 1
            if not self._waiting[address] and address in self._markers:
                self._spawn(self._give_up_turn(address))

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        try:
            task = asyncio.get_running_loop().create_task(work)
        except RuntimeError:  # no loop: the process is ending, and its connection with it
            work.close()
            return
        self._unlocking.add(task)
        task.add_done_callback(self._unlocking.discard)

    async def acquire(self, address: str) -> None:
        await super().acquire(address)
        try:
            await self._take(address, 1)
        except BaseException:
            super().release(address)
            raise

    def release(self, address: str, *, peer_closed: bool = False) -> None:
        held = sorted(self._held.get(address, ()))
        super().release(address, peer_closed=peer_closed)
        if held:
            self._unlock_later(address, self._give_back(address, held[-1:]), 0.0 if peer_closed else self.linger)

    def _unlock_later(self, address: str, slots: list[int], delay: float) -> None:
        """Unlock after ``delay`` (the local linger: the peer may not have seen our close yet), in a task of its own."""
        async def later() -> None:
            if delay:
                await asyncio.sleep(delay)
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
                    self._unlock_later(address, self._give_back(address, fleet), self.linger)
            finally:
                for _ in range(taken):
                    AddressLimits.release(self, address)

    async def aclose(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                await self._conn.close()
            self._conn = None
