"""The lab's DNS server: dnspython over UDP on 127.0.0.1, authoritative for the lab's names only.

It answers A queries for the names it was given, NOERROR with no answer for
other types of those names (AAAA: the lab is IPv4 only), and NXDOMAIN for
every other name. It never forwards a query anywhere, so the demo's scan
cannot resolve anything outside the lab.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Mapping

import dns.exception
import dns.flags
import dns.message
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset

TTL = 60
_POLL = 0.2  # seconds between checks of the stop flag


class LabDns:
    """A threaded UDP DNS server; ``start()`` binds a free port, ``stop()`` joins the thread."""

    def __init__(self, records: Mapping[str, str], *, listen: str = "127.0.0.1") -> None:
        self.records = {name.rstrip(".").lower(): addr for name, addr in records.items()}
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
        name = question.name.to_text().rstrip(".").lower()
        address = self.records.get(name)
        if address is None:
            response.set_rcode(dns.rcode.NXDOMAIN)
        elif question.rdtype == dns.rdatatype.A and question.rdclass == dns.rdataclass.IN:
            response.answer.append(dns.rrset.from_text(question.name, TTL, "IN", "A", address))
        return response.to_wire()
