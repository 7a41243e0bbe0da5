"""The lab's DNS server: dnspython over UDP on 127.0.0.1, authoritative for the lab's names only.

It answers A (and AAAA) queries for the names of its :class:`Zone`, NOERROR
with no answer for other types of those names (the lab is IPv4 only), and
NXDOMAIN for every other name. It never forwards a query anywhere, so the demo's scan
cannot resolve anything outside the lab.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset

TTL = 60
_POLL = 0.2  # seconds between checks of the stop flag


@dataclass(frozen=True)
class Zone:
    """What a loopback DNS server knows: name -> its addresses (IPv4 and/or IPv6), alias -> name.

    The one description of a test or lab zone: the lab's :class:`LabDns` serves it, and the
    tests' dnsmasq (tests/support/dnsserver.py) is configured from it. Nothing else resolves.
    """

    records: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    cnames: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, records: Mapping[str, str | Sequence[str]] | None = None,
           cnames: Mapping[str, str] | None = None) -> Zone:
        """A zone from ``{name: address or [addresses]}`` and ``{alias: target}``."""
        return cls({k: (v,) if isinstance(v, str) else tuple(v) for k, v in (records or {}).items()},
                   dict(cnames or {}))

    def lookup(self, name: str) -> tuple[str | None, tuple[str, ...]] | None:
        """(the alias's target or None, the addresses) for ``name`` (case-insensitive); None: not in the zone."""
        def key(n: str) -> str:
            return n.rstrip(".").lower()

        records = {key(k): v for k, v in self.records.items()}
        target = {key(k): v for k, v in self.cnames.items()}.get(key(name))
        found = records.get(key(target if target is not None else name))
        if found is None:
            return None if target is None else (target, ())
        return target, found


class LabDns:
    """A threaded UDP DNS server; ``start()`` binds a free port, ``stop()`` joins the thread."""

    def __init__(self, records: Mapping[str, str] | Zone, *, listen: str = "127.0.0.1") -> None:
        self.zone = records if isinstance(records, Zone) else Zone.of(records)
        self.listen = listen
        self.port = 0
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    @property
    def address(self) -> str:
        return f"{self.listen}:{self.port}"

    def start(self) -> LabDns:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind((self.listen, 0))
        sock.settimeout(_POLL)
        self._sock = sock
        self.port = int(sock.getsockname()[1])
        self._thread = threading.Thread(target=self._serve, name="lab-dns", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2)
            self._thread = None
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def _serve(self) -> None:
        assert self._sock is not None
        while not self._stop.is_set():
            try:
                wire, peer = self._sock.recvfrom(4096)
            except (TimeoutError, BlockingIOError):
                continue
            except OSError:
                return
            reply = self.answer(wire)
            if reply is not None:
                try:
                    self._sock.sendto(reply, peer)
                except OSError:
                    continue

    def answer(self, wire: bytes) -> bytes | None:
        """The reply to one query (None for something that is not a query: dropped)."""
        try:
            query = dns.message.from_wire(wire)
        except dns.exception.DNSException:
            return None
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        if len(query.question) != 1:
            response.set_rcode(dns.rcode.FORMERR)
            return response.to_wire()
        question = query.question[0]
        found = self.zone.lookup(question.name.to_text())
        if found is None:
            response.set_rcode(dns.rcode.NXDOMAIN)
            return response.to_wire()
        target, addresses = found
        if question.rdclass != dns.rdataclass.IN:
            return response.to_wire()
        owner = question.name
        if target is not None:
            response.answer.append(dns.rrset.from_text(owner, TTL, "IN", "CNAME", target.rstrip(".") + "."))
            owner = dns.name.from_text(target)
        rdtype = {dns.rdatatype.A: "A", dns.rdatatype.AAAA: "AAAA"}.get(question.rdtype)
        wanted = [a for a in addresses if (":" in a) == (rdtype == "AAAA")]
        if rdtype is not None and wanted:
            response.answer.append(dns.rrset.from_text_list(owner, TTL, "IN", rdtype, wanted))
        return response.to_wire()
